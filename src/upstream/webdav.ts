// The WebDAV backend; its parts live in ./webdav/.
export { WebDavUpstream, type WebDavUpstreamOptions } from './webdav/upstream.js';
