import { StringDecoder } from 'node:string_decoder';
import { SaxesParser } from 'saxes';
import { UpstreamUnavailableError } from '../../errors.js';

// PROPFIND request bodies, and a streaming parser for the DAV:multistatus answers.

const MAX_TEXT = 64 * 1024; // longest text kept for one XML element

const PROPS = ['resourcetype', 'getcontentlength', 'getlastmodified', 'getetag', 'creationdate'] as const;
const QUOTA_PROPS = ['quota-available-bytes', 'quota-used-bytes'] as const;
const CAPTURED = new Set<string>(['getcontentlength', 'getlastmodified', 'getetag', 'creationdate', ...QUOTA_PROPS]);

function propfindBody(props: readonly string[]): string {
  return '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>' +
    props.map((p) => `<D:${p}/>`).join('') + '</D:prop></D:propfind>';
}
export const STAT_BODY = propfindBody(PROPS);
export const QUOTA_BODY = propfindBody(QUOTA_PROPS);

export interface DavResponse {
  href: string;
  /** A <D:status> directly in the response (RFC 4918 §14.24): no propstats then. */
  status?: number;
  /** Properties from 2xx propstats only; 404/405/... propstats are ignored. */
  props: Map<string, string>;
  collection: boolean;
  /** At least one propstat succeeded (a response with only 404 propstats describes nothing). */
  ok: boolean;
}

function statusCode(line: string): number | undefined {
  const m = /^\s*HTTP\/\d(?:\.\d)?\s+(\d{3})\b/i.exec(line);
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/**
 * Push parser for a DAV:multistatus body: feed it text, collect each <D:response> as soon as
 * it closes from `take()`. Memory is bounded by one response plus one chunk of text.
 */
export class MultiStatusParser {
  #parser = new SaxesParser({ xmlns: true });
  #done: DavResponse[] = [];
  #stack: string[] = [];
  #cur: DavResponse | null = null;
  #ps: { status?: number; props: Map<string, string>; collection: boolean } | null = null;
  #text: string | null = null;
  #error: Error | null = null;

  constructor() {
    const p = this.#parser;
    p.on('error', (e) => { this.#error ??= e; });
    p.on('opentag', (node) => {
      const name = node.uri === 'DAV:' ? node.local : `{${node.uri}}${node.local}`;
      this.#stack.push(name);
      const depth = this.#stack.length;
      const at = (i: number) => this.#stack[i];
      if (at(0) !== 'multistatus') return;
      if (depth === 2 && name === 'response') {
        this.#cur = { href: '', props: new Map(), collection: false, ok: false };
      } else if (!this.#cur || at(1) !== 'response') {
        return;
      } else if (depth === 3 && (name === 'href' || name === 'status')) {
        this.#text = '';
      } else if (depth === 3 && name === 'propstat') {
        this.#ps = { props: new Map(), collection: false };
      } else if (this.#ps && at(2) === 'propstat') {
        if (depth === 4 && name === 'status') this.#text = '';
        else if (depth === 5 && at(3) === 'prop' && CAPTURED.has(name)) this.#text = '';
        else if (depth === 6 && at(3) === 'prop' && at(4) === 'resourcetype' && name === 'collection') this.#ps.collection = true;
      }
    });
    const onText = (t: string) => {
      if (this.#text !== null && this.#text.length < MAX_TEXT) this.#text += t;
    };
    p.on('text', onText);
    p.on('cdata', onText);
    p.on('closetag', () => {
      const depth = this.#stack.length;
      const name = this.#stack.pop();
      const text = this.#text;
      this.#text = null;
      const cur = this.#cur;
      if (!cur || this.#stack[0] !== 'multistatus' || this.#stack[1] !== 'response' && depth > 2) return;
      if (depth === 2 && name === 'response') {
        this.#cur = null;
        if (cur.href) this.#done.push(cur);
      } else if (depth === 3 && name === 'href') {
        if (!cur.href && text !== null) cur.href = text.trim();
      } else if (depth === 3 && name === 'status') {
        if (text !== null) cur.status = statusCode(text);
      } else if (depth === 3 && name === 'propstat') {
        const ps = this.#ps;
        this.#ps = null;
        if (ps && (ps.status === undefined || (ps.status >= 200 && ps.status < 300))) {
          for (const [k, v] of ps.props) cur.props.set(k, v);
          if (ps.collection) cur.collection = true;
          cur.ok = true;
        }
      } else if (this.#ps && depth === 4 && name === 'status') {
        if (text !== null) this.#ps.status = statusCode(text);
      } else if (this.#ps && depth === 5 && name !== undefined && text !== null) {
        this.#ps.props.set(name, text.trim());
      }
    });
  }

  write(text: string): void {
    if (text) this.#parser.write(text);
    this.#check();
  }

  close(): void {
    this.#parser.close();
    this.#check();
  }

  /** Responses completed since the last call. */
  take(): DavResponse[] {
    const out = this.#done;
    this.#done = [];
    return out;
  }

  #check(): void {
    if (this.#error) throw new UpstreamUnavailableError(`malformed multistatus from the upstream: ${this.#error.message.slice(0, 200)}`);
  }
}

/** The responses of a streamed multistatus body, as they are parsed: one batch per chunk. */
export async function* multistatusBatches(body: AsyncIterable<Buffer>): AsyncGenerator<DavResponse[], void, undefined> {
  const parser = new MultiStatusParser();
  const decoder = new StringDecoder('utf8');
  for await (const chunk of body) {
    parser.write(decoder.write(chunk));
    yield parser.take();
  }
  parser.write(decoder.end());
  parser.close();
  yield parser.take();
}

/** The first member of a whole multistatus body with a non-2xx <D:status>; none when it is malformed. */
export function firstFailure(text: string): { status: number; href: string } | undefined {
  const parser = new MultiStatusParser();
  try {
    parser.write(text);
    parser.close();
    for (const r of parser.take()) {
      if (r.status !== undefined && (r.status < 200 || r.status >= 300)) return { status: r.status, href: r.href };
    }
  } catch { /* malformed: the caller reports a partial failure */ }
  return undefined;
}
