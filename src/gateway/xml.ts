import type { IncomingMessage } from 'node:http';
import { SaxesParser } from 'saxes';
import { BadXmlError, BodyTooLargeError, DavgateError, IncompleteBodyError } from '../errors.js';
import { checkBodyLength } from './limits.js';

// Request bodies are small XML documents (PROPFIND, LOCK, PROPPATCH). They are read with a
// hard size limit, then parsed namespace-aware: WebDAV elements are identified by
// (namespace URI, local name), never by prefix.

export interface XmlAttribute { readonly ns: string; readonly local: string; readonly value: string }

export interface XmlElement {
  readonly ns: string;
  readonly local: string;
  /** Attributes other than namespace declarations, with their resolved namespace. */
  readonly attrs: XmlAttribute[];
  /** Element children only. */
  readonly children: XmlElement[];
  /** Mixed content in document order: elements and text. */
  readonly nodes: Array<XmlElement | string>;
  /** Concatenated text of the direct text children. */
  text: string;
}

/** Read a whole request body, refusing more than `limit` bytes (413) before buffering it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  try {
    checkBodyLength(declared === undefined ? undefined : Number(declared), limit);
  } catch (err) {
    req.resume();
    throw err;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.length;
      checkBodyLength(total, limit);
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof DavgateError) throw err;
    throw new IncompleteBodyError('the client went away before the end of the body'); // not our failure
  }
  if (!req.complete) throw new IncompleteBodyError();
  return Buffer.concat(chunks);
}

/** Bounds on a request body, checked while it is read and parsed, before any work on it. */
export interface XmlLimits {
  maxBytes: number;
  /** Element nesting: deeper is a 400 (one request nested 10k deep once cost seconds of CPU). */
  maxDepth: number;
  /** Elements in the whole document: more is a 413. */
  maxElements: number;
}

/** Read and parse an XML request body within `limits`; undefined for an empty one. */
export async function readXml(req: IncomingMessage, limits: XmlLimits): Promise<XmlElement | undefined> {
  return parseXml(await readBody(req, limits.maxBytes), limits);
}

/**
 * Parse an XML body; undefined for an empty one. Malformed XML is a 400. Events only, no
 * recursion: the parse stops at the first element beyond `maxDepth` or `maxElements`, so its
 * cost is linear in the part of the body read.
 */
export function parseXml(body: Buffer, limits: Pick<XmlLimits, 'maxDepth' | 'maxElements'> = { maxDepth: 64, maxElements: 10_000 }): XmlElement | undefined {
  const text = body.toString('utf8');
  if (text.trim() === '') return undefined;
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  parser.on('opentag', (tag) => {
    const attrs: XmlAttribute[] = [];
    for (const a of Object.values(tag.attributes)) {
      if (typeof a === 'string' || a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      attrs.push({ ns: a.uri ?? '', local: a.local ?? a.name, value: a.value });
    }
    if (stack.length >= limits.maxDepth) throw new BadXmlError(`XML body nested deeper than ${limits.maxDepth} elements`);
    if (++elements > limits.maxElements) throw new BodyTooLargeError(`XML body has more than ${limits.maxElements} elements`);
    const el: XmlElement = { ns: tag.uri ?? '', local: tag.local ?? tag.name, attrs, children: [], nodes: [], text: '' };
    const parent = stack[stack.length - 1];
    if (parent) { parent.children.push(el); parent.nodes.push(el); }
    else if (root) throw new Error('more than one root element');
    else root = el;
    stack.push(el);
  });
  const onText = (t: string) => { const top = stack[stack.length - 1]; if (top) { top.text += t; top.nodes.push(t); } };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', () => { stack.pop(); });
  try {
    parser.write(text).close();
  } catch (err) {
    if (err instanceof DavgateError) throw err;
    throw new BadXmlError(`malformed XML body: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!root) throw new BadXmlError('XML body has no root element');
  return root;
}

export function child(el: XmlElement, ns: string, local: string): XmlElement | undefined {
  return el.children.find((c) => c.ns === ns && c.local === local);
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
/** Escape for text content and attribute values alike. Quotes are left alone in text (ETags are quoted). */
const TEXT_SPECIAL = /[&<>]/;
const ATTR_SPECIAL = /[&<>"']/;

export function escapeXml(s: string, attribute = false): string {
  // Most names need nothing: testing first skips the replace and its callback.
  if (!(attribute ? ATTR_SPECIAL : TEXT_SPECIAL).test(s)) return s;
  return s.replace(attribute ? /[&<>"']/g : /[&<>]/g, (c) => ESC[c]!);
}

const XML_NS = 'http://www.w3.org/XML/1998/namespace';

/**
 * Serialise the content of an element (its mixed children) so that it means the same in any
 * context: every element declares its own namespace prefix, and elements in no namespace
 * carry xmlns="" so that no inherited default namespace can capture them.
 */
export function innerXml(el: XmlElement, depth = 0): string {
  let out = '';
  for (const n of el.nodes) {
    if (typeof n === 'string') { out += escapeXml(n); continue; }
    const prefix = `n${depth}`;
    const tag = n.ns ? `${prefix}:${n.local}` : n.local;
    let head = n.ns ? ` xmlns:${prefix}="${escapeXml(n.ns, true)}"` : ' xmlns=""';
    n.attrs.forEach((a, i) => {
      if (!a.ns) head += ` ${a.local}="${escapeXml(a.value, true)}"`;
      else if (a.ns === XML_NS) head += ` xml:${a.local}="${escapeXml(a.value, true)}"`;
      else head += ` xmlns:a${depth}_${i}="${escapeXml(a.ns, true)}" a${depth}_${i}:${a.local}="${escapeXml(a.value, true)}"`;
    });
    const inner = innerXml(n, depth + 1);
    out += inner ? `<${tag}${head}>${inner}</${tag}>` : `<${tag}${head}/>`;
  }
  return out;
}
