import mime from 'mime-types';
import type { Node } from '../cachemgr/cachemgr.js';
import { encodeHref, nameOf } from '../davpath.js';
import { escapeXml } from './xml.js';
import { etagOf } from './conditional.js';

// The text forms of a node's live properties, formatted once per node record: a hot GET
// answers its headers and a hot PROPFIND its entries from here, since formatting dates and
// encoding hrefs costs more than the rest of the work. Records are immutable (a change makes
// a new one), so a WeakMap keyed by the record can never serve an old value, and its entries
// (about 200 bytes each) go with the records, which the node table and listing cache bound.

export function contentTypeOf(path: string): string {
  return mime.lookup(path) || 'application/octet-stream';
}

/**
 * Both date forms have a resolution of one second, and the files of a directory often share
 * theirs (copied or unpacked together): the last second formatted is kept.
 */
class SecondsText {
  #second = NaN;
  #text = '';
  constructor(readonly format: (d: Date) => string) {}
  of(ms: number): string {
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      this.#text = this.format(new Date(second * 1000));
      this.#second = second;
    }
    return this.#text;
  }
}
const httpDate = new SecondsText((d) => d.toUTCString());
const iso8601 = new SecondsText((d) => d.toISOString().slice(0, 19) + 'Z');

export interface NodeText {
  /** Percent-encoded, with the trailing slash of a collection. */
  readonly href: string;
  /** HTTP-date (Last-Modified, getlastmodified). */
  readonly lastModified: string;
  /** ISO 8601 (creationdate). */
  readonly created: string;
  readonly etag: string;
  readonly contentType: string;
  /** XML-escaped, for PROPFIND. */
  readonly displayNameXml: string;
  readonly contentTypeXml: string;
}

const texts = new WeakMap<Node, NodeText>();

export function textOf(node: Node): NodeText {
  let t = texts.get(node);
  if (t) return t;
  const contentType = node.kind === 'file' ? contentTypeOf(node.path) : '';
  t = {
    href: encodeHref(node.path) + (node.kind === 'dir' && node.path !== '/' ? '/' : ''),
    lastModified: httpDate.of(node.mtimeMs),
    created: iso8601.of(node.birthtimeMs),
    etag: etagOf(node),
    contentType,
    displayNameXml: escapeXml(nameOf(node.path)),
    contentTypeXml: escapeXml(contentType),
  };
  texts.set(node, t);
  return t;
}
