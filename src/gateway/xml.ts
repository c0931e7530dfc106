import type { IncomingMessage } from 'node:http';
import { SaxesParser } from 'saxes';
import { BadRequestError, DavgateError } from '../errors.js';

// Request bodies are small XML documents (PROPFIND, LOCK, PROPPATCH). They are read with a
// hard size limit, then parsed namespace-aware: WebDAV elements are identified by
// (namespace URI, local name), never by prefix.

export interface XmlElement {
  readonly ns: string;
  readonly local: string;
  readonly children: XmlElement[];
  text: string;
}

/** Read a whole request body, refusing more than `limit` bytes (413) before buffering it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    throw new DavgateError('DAVGATE_BODY_TOO_LARGE', `request body over ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new DavgateError('DAVGATE_BODY_TOO_LARGE', `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parse an XML body; undefined for an empty one. Malformed XML is a 400. */
export function parseXml(body: Buffer): XmlElement | undefined {
  const text = body.toString('utf8');
  if (text.trim() === '') return undefined;
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  parser.on('opentag', (tag) => {
    const el: XmlElement = { ns: tag.uri ?? '', local: tag.local ?? tag.name, children: [], text: '' };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else if (root) throw new Error('more than one root element');
    else root = el;
    stack.push(el);
  });
  parser.on('text', (t) => { const top = stack[stack.length - 1]; if (top) top.text += t; });
  parser.on('closetag', () => { stack.pop(); });
  try {
    parser.write(text).close();
  } catch (err) {
    throw new BadRequestError(`malformed XML body: ${(err as Error).message.split('\n')[0]}`, 'DAVGATE_BAD_XML');
  }
  if (!root) throw new BadRequestError('XML body has no root element', 'DAVGATE_BAD_XML');
  return root;
}

export function child(el: XmlElement, ns: string, local: string): XmlElement | undefined {
  return el.children.find((c) => c.ns === ns && c.local === local);
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
/** Escape for text content and attribute values alike. Quotes are left alone in text (ETags are quoted). */
export function escapeXml(s: string, attribute = false): string {
  return s.replace(attribute ? /[&<>"']/g : /[&<>]/g, (c) => ESC[c]!);
}
