import { BadRequestError } from '../errors.js';
import { canonicalFromUrlPath } from '../davpath.js';

// The WebDAV If request header (RFC 4918 §10.4):
//
//   If = "If" ":" ( 1*No-tag-list | 1*Tagged-list )
//   No-tag-list = List
//   Tagged-list = Resource-Tag 1*List
//   List = "(" 1*Condition ")"
//   Condition = ["Not"] (State-token | "[" entity-tag "]")
//   State-token = Coded-URL                ; "<" absolute-URI ">"
//   Resource-Tag = "<" Simple-ref ">"      ; absolute-URI | path-absolute ["?" query]
//
// A small hand-written scanner: one pass, no backtracking, so the cost is linear in the
// header, which is itself capped. A regex over the whole grammar would be unreadable and
// could not report where the header went wrong; a lenient `<[^>]*>` scan accepts garbage.

export interface IfCondition { not: boolean; kind: 'token' | 'etag'; value: string }
/**
 * `resource` is the canonical DAV path named by the Resource-Tag, undefined for an untagged
 * list. It is '' (never a canonical path) when the tag does not canonicalise (a "urn:" URI,
 * a ".." segment, bad percent-encoding): such a list names nothing here and evaluates false.
 */
export interface IfList { resource?: string; conditions: IfCondition[] }
export interface IfHeader { lists: IfList[] }

export const MAX_IF_HEADER_LENGTH = 16 * 1024;
export const MAX_IF_CONDITIONS = 256;
const NO_LOCK = 'DAV:no-lock';

function malformed(why: string, at?: number): BadRequestError {
  return new BadRequestError(`malformed If header: ${why}${at === undefined ? '' : ` at offset ${at}`}`);
}

/** Characters allowed inside <...>: anything visible except the delimiters (no LWS, no CTL). */
function isUriChar(c: number): boolean {
  return c > 0x20 && c !== 0x7f && c !== 0x3c /* < */ && c !== 0x3e /* > */;
}

class Scanner {
  pos = 0;
  conditions = 0;
  constructor(readonly s: string) {}

  /** Skip LWS = [CRLF] 1*(SP | HT); a bare CR or LF is not whitespace. */
  ws(): void {
    for (;;) {
      const c = this.s[this.pos];
      if (c === ' ' || c === '\t') this.pos++;
      else if (c === '\r' && this.s[this.pos + 1] === '\n' && (this.s[this.pos + 2] === ' ' || this.s[this.pos + 2] === '\t')) this.pos += 3;
      else return;
    }
  }

  peek(): string | undefined { return this.s[this.pos]; }

  expect(ch: string): void {
    if (this.s[this.pos] !== ch) throw malformed(`expected "${ch}"`, this.pos);
    this.pos++;
  }

  /** "<" ... ">" with the text between; the caller checks it is the right kind of URI. */
  angle(): string {
    const start = this.pos;
    this.expect('<');
    while (this.pos < this.s.length && isUriChar(this.s.charCodeAt(this.pos))) this.pos++;
    const value = this.s.slice(start + 1, this.pos);
    this.expect('>');
    if (value === '') throw malformed('empty <>', start);
    return value;
  }

  /** List = "(" 1*Condition ")" */
  list(resource: string | undefined): IfList {
    this.expect('(');
    const conditions: IfCondition[] = [];
    for (;;) {
      this.ws();
      if (this.peek() === ')') break;
      conditions.push(this.condition());
      if (++this.conditions > MAX_IF_CONDITIONS) throw malformed(`more than ${MAX_IF_CONDITIONS} conditions`);
    }
    if (conditions.length === 0) throw malformed('list without a condition', this.pos);
    this.pos++;
    return resource === undefined ? { conditions } : { resource, conditions };
  }

  /** Condition = ["Not"] (State-token | "[" entity-tag "]") */
  condition(): IfCondition {
    let not = false;
    if (this.s.slice(this.pos, this.pos + 3).toLowerCase() === 'not') {
      not = true;
      this.pos += 3;
      this.ws();
    }
    const at = this.pos;
    const c = this.peek();
    if (c === '<') {
      const value = this.angle();
      if (!isAbsoluteUri(value)) throw malformed('state token is not an absolute URI', at);
      return { not, kind: 'token', value };
    }
    if (c === '[') {
      this.pos++;
      this.ws();
      const value = this.entityTag();
      this.ws();
      this.expect(']');
      return { not, kind: 'etag', value };
    }
    throw malformed('expected a state token or [entity-tag]', at);
  }

  /** entity-tag = [ "W/" ] quoted-string; kept verbatim (escapes included), "w/" spelled "W/". */
  entityTag(): string {
    let weak = '';
    if ((this.peek() === 'W' || this.peek() === 'w') && this.s[this.pos + 1] === '/') {
      weak = 'W/';
      this.pos += 2;
    }
    const start = this.pos;
    this.expect('"');
    for (;;) {
      const c = this.s.charCodeAt(this.pos);
      if (Number.isNaN(c)) throw malformed('unterminated entity tag', start);
      if (c === 0x22) break;
      if (c === 0x5c /* \ */) {
        // quoted-pair = "\" CHAR (any US-ASCII octet)
        const next = this.s.charCodeAt(this.pos + 1);
        if (Number.isNaN(next) || next > 0x7f) throw malformed('bad escape in entity tag', this.pos);
        this.pos += 2;
        continue;
      }
      // qdtext = TEXT except <">; TEXT excludes CTLs but allows HT
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw malformed('control character in entity tag', this.pos);
      this.pos++;
    }
    this.pos++;
    return weak + this.s.slice(start, this.pos);
  }
}

/** absolute-URI starts with scheme ":" where scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
function isAbsoluteUri(v: string): boolean {
  const colon = v.indexOf(':');
  return colon > 0 && /^[A-Za-z][A-Za-z0-9+.-]*$/.test(v.slice(0, colon));
}

/** Parse an If header; throws BadRequestError when it does not follow the grammar. */
export function parseIf(header: string): IfHeader {
  if (header.length > MAX_IF_HEADER_LENGTH) throw malformed(`longer than ${MAX_IF_HEADER_LENGTH} characters`);
  const sc = new Scanner(header);
  const lists: IfList[] = [];
  let tagged: boolean | undefined; // fixed by the first production; the two forms do not mix
  let resource: string | undefined;
  let listsSinceTag = 0;
  for (;;) {
    sc.ws();
    const c = sc.peek();
    if (c === undefined) break;
    if (c === '<') {
      if (tagged === false) throw malformed('resource tag after untagged list', sc.pos);
      if (tagged === true && listsSinceTag === 0) throw malformed('resource tag without a list', sc.pos);
      const at = sc.pos;
      const tag = sc.angle();
      if (!tag.startsWith('/') && !isAbsoluteUri(tag)) throw malformed('resource tag is neither an absolute URI nor an absolute path', at);
      tagged = true;
      resource = tagPath(tag);
      listsSinceTag = 0;
    } else if (c === '(') {
      if (tagged === undefined) tagged = false;
      lists.push(sc.list(resource));
      listsSinceTag++;
    } else {
      throw malformed('expected "(" or "<"', sc.pos);
    }
  }
  if (lists.length === 0) throw malformed('no list');
  if (tagged === true && listsSinceTag === 0) throw malformed('resource tag without a list', header.length);
  return { lists };
}

/**
 * The canonical path a Resource-Tag names, or '' when it names none. scheme://authority is
 * dropped whatever the host (a reverse proxy may have rewritten it); the query goes. As for
 * request targets (request.ts), a raw "#" stays part of the path rather than starting a
 * fragment. A trailing slash is dropped by canonicalisation: "/a/" and "/a" are one resource.
 */
function tagPath(tag: string): string {
  let p = tag;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(p);
  if (abs) p = p.slice(abs[0].length) || '/';
  const q = p.indexOf('?');
  if (q !== -1) p = p.slice(0, q);
  if (!p.startsWith('/')) return ''; // e.g. "urn:x" or "mailto:x": not a path on this server
  try {
    return canonicalFromUrlPath(p);
  } catch {
    return '';
  }
}

/** Every state token that appears anywhere in the header (these count as "submitted" lock tokens, RFC 4918 §10.4.1). */
export function stateTokens(h: IfHeader): Set<string> {
  const out = new Set<string>();
  for (const l of h.lists) for (const c of l.conditions) if (c.kind === 'token') out.add(c.value);
  return out;
}

export interface ResourceState { etag?: string; lockTokens: ReadonlySet<string> }

/**
 * Entity tags are compared on their opaque part, a W/ on either side ignored (the weak
 * comparison of RFC 9110 §8.8.3.2). davgate's own ETags are strong, so this only matters
 * when something in between (a compressing proxy) weakened one: refusing the request then
 * would fail a client that did nothing wrong, and the opaque part still names the version.
 */
function opaque(etag: string): string {
  return etag.startsWith('W/') ? etag.slice(2) : etag;
}

/**
 * Evaluate per RFC 4918 §10.4.3–10.4.5: the header is true when at least one applicable list is true; a list is true when all its conditions are true.
 * Untagged lists apply to `requestPath`; a tagged list applies to its resource. `state(path)` gives the current state of a resource (may be async).
 * A state-token condition is true when the token is among the resource's current lock tokens; "DAV:no-lock" never matches (so `Not <DAV:no-lock>` is always true).
 * An etag condition is true when its opaque part equals that of the resource's current etag (W/ ignored on both sides, see `opaque`); false when the resource has no etag.
 * A tagged list whose tag does not canonicalise is false. `state` is called at most once per path.
 */
export async function evaluateIf(h: IfHeader, requestPath: string, state: (path: string) => ResourceState | Promise<ResourceState>): Promise<boolean> {
  const seen = new Map<string, ResourceState>();
  for (const list of h.lists) {
    const path = list.resource ?? requestPath;
    if (path === '') continue;
    const st = seen.get(path) ?? await state(path);
    seen.set(path, st);
    if (list.conditions.every((c) => c.not !== holds(c, st))) return true;
  }
  return false;
}

function holds(c: IfCondition, st: ResourceState): boolean {
  if (c.kind === 'token') return c.value !== NO_LOCK && st.lockTokens.has(c.value);
  return st.etag !== undefined && opaque(st.etag) === opaque(c.value);
}
