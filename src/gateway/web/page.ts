import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../../cachemgr/cachemgr.js';
import { encodeHref, nameOf } from '../../davpath.js';
import { formatBytes } from '../../format.js';
import { escapeXml } from '../xml.js';
import { textOf } from '../node-text.js';
import { identityOf, type GatewayContext } from '../request.js';
import { clientGone } from '../drain.js';
import { startBody } from '../compress.js';
import { ASSET_PREFIX, PAGE_SECURITY_HEADERS } from './assets.js';

// The file manager a browser gets at a collection URL: the listing rendered on the server
// (streamed like PROPFIND, so a huge directory costs no memory), and one script of our own
// (assets/app.js) for sorting, upload, new folder, rename and delete over plain WebDAV
// requests. Every name goes through escapeXml: a file called <img onerror=...> is text.
// Read-only users get no write controls (and their writes are refused anyway).

const esc = (s: string) => escapeXml(s, true);

/** Absolute, to the second, the same for every viewer: "2026-12-04 01:36:04 UTC". */
export const formatDate = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';

/** The cache column: how much of a file's bytes this gateway holds. */
export function cacheState(cached: number, size: number): string {
  if (size === 0 || cached >= size) return 'cached';
  if (cached === 0) return 'not cached';
  return `${Math.floor((100 * cached) / size)} % cached`;
}

function breadcrumbs(path: string): string {
  const parts = path === '/' ? [] : path.slice(1).split('/');
  let at = '';
  const links = [`<a href="/">${esc('/')}</a>`];
  parts.forEach((p, i) => {
    at += '/' + p;
    links.push(i === parts.length - 1 ? `<span aria-current="page">${esc(p)}</span>` : `<a href="${esc(encodeHref(at + '/'))}">${esc(p)}</a>`);
  });
  return links.join(' <span aria-hidden="true">›</span> ');
}

function head(node: Node, writable: boolean): string {
  const title = esc(node.path);
  const tools = writable ? `
<div class="tools">
 <label class="button" for="files">Upload files<input type="file" id="files" multiple></label>
 <form id="mkdir"><input type="text" id="folder-name" placeholder="New folder" aria-label="New folder name" required><button type="submit">Create folder</button></form>
</div>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} – davgate</title>
<link rel="icon" href="${ASSET_PREFIX}favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="${ASSET_PREFIX}app.css">
<script src="${ASSET_PREFIX}app.js" defer></script></head>
<body data-writable="${writable ? '1' : '0'}">
<header><nav class="crumbs" aria-label="Path">${breadcrumbs(node.path)}</nav>${tools}</header>
<main>
${writable ? '<div id="drop">Drop files here to upload them to this folder</div><ul id="uploads" aria-label="Uploads"></ul>' : ''}
<p id="status" role="status" aria-live="polite"></p>
<table id="listing"><thead><tr>
<th data-sort="name" aria-sort="ascending"><button type="button">Name</button></th>
<th data-sort="size" class="size"><button type="button">Size</button></th>
<th data-sort="mtime"><button type="button">Modified</button></th>
<th>Cache</th>${writable ? '<th><span class="visually-hidden">Actions</span></th>' : ''}
</tr></thead><tbody>
`;
}

function row(ctx: GatewayContext, child: Node, writable: boolean): string {
  const dir = child.kind === 'dir';
  const name = nameOf(child.path);
  const href = textOf(child).href;
  const link = dir ? `<a class="dir" href="${esc(href)}">${esc(name)}/</a>` : `<a href="${esc(href)}" download="${esc(name)}">${esc(name)}</a>`;
  const cache = dir ? '' : cacheState(ctx.cache.cachedBytes(child), child.size) + (ctx.cache.isPinned(child) ? ', pinned' : '');
  const actions = writable
    ? `<td class="actions"><button type="button" class="rename" aria-label="Rename ${esc(name)}">Rename</button> <button type="button" class="delete" aria-label="Delete ${esc(name)}">Delete</button></td>`
    : '';
  return `<tr data-name="${esc(name)}" data-kind="${dir ? 'dir' : 'file'}" data-size="${dir ? -1 : child.size}" data-mtime="${child.mtimeMs}">`
    + `<td class="name">${link}</td><td class="size">${dir ? '' : formatBytes(child.size)}</td>`
    + `<td class="mtime"><time datetime="${new Date(child.mtimeMs).toISOString()}">${formatDate(child.mtimeMs)}</time></td>`
    + `<td class="cache">${cache}</td>${actions}</tr>\n`;
}

/** The page of collection `node`, streamed entry by entry. */
export async function sendPage(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply, node: Node): Promise<void> {
  const writable = !(req.davUser?.readOnly ?? false);
  reply.hijack();
  const res = reply.raw;
  const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache', 'vary': 'Authorization', ...PAGE_SECURITY_HEADERS };
  if (req.method === 'HEAD') { res.writeHead(200, headers).end(); return; }
  const body = startBody(req.headers['accept-encoding'], res, 200, headers);
  try {
    let out = head(node, writable);
    let n = 0;
    for await (const child of ctx.cache.list(node, identityOf(req))) {
      n++;
      out += row(ctx, child, writable);
      if (out.length >= 65536) { await body.write(out); out = ''; } // batched, like PROPFIND
    }
    body.end(out + `</tbody></table>${n === 0 ? '<p class="empty">This folder is empty.</p>' : ''}\n</main></body></html>\n`);
  } catch (err) {
    if (clientGone(res)) req.log.debug({ err }, 'page ended by the client');
    else req.log.warn({ err }, 'page aborted');
    res.destroy();
  }
}
