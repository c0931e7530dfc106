import { BadRequestError } from '../errors.js';
import type { XmlElement } from './xml.js';

// PROPPATCH bodies are checked here before webdav-server applies them (RFC 4918 §14.19):
// a DAV:propertyupdate whose children are DAV:set or DAV:remove, each with one DAV:prop.
// Anything else is a 400 from us instead of an exception inside webdav-server.

const DAV = 'DAV:';

export function checkPropertyUpdate(root: XmlElement | undefined): void {
  if (!root || root.ns !== DAV || root.local !== 'propertyupdate') throw new BadRequestError('PROPPATCH body must be a DAV:propertyupdate element', 'DAVGATE_BAD_XML');
  if (root.children.length === 0) throw new BadRequestError('PROPPATCH body has no set or remove', 'DAVGATE_BAD_XML');
  for (const op of root.children) {
    if (op.ns !== DAV || (op.local !== 'set' && op.local !== 'remove')) throw new BadRequestError(`unexpected element ${op.local} in propertyupdate`, 'DAVGATE_BAD_XML');
    const props = op.children.filter((c) => c.ns === DAV && c.local === 'prop');
    if (props.length !== 1 || op.children.length !== 1) throw new BadRequestError(`DAV:${op.local} must contain exactly one DAV:prop`, 'DAVGATE_BAD_XML');
  }
}
