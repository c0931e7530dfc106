import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { DavgateError, IncompleteBodyError } from '../../errors.js';
import { SizeCheck } from '../checks.js';
import type { CallContext } from '../types.js';
import { transportError } from './errors.js';
import type { DavClient } from './http.js';

/**
 * PUT `body` to `target`, streamed through a SizeCheck. Throws the body's own error (the
 * client's abort, as the contract allows) or IncompleteBodyError when it fails; the response,
 * whatever its status, is the caller's.
 */
export async function putBody(
  http: DavClient, target: string, ctx: CallContext | undefined, body: Readable, size: number | undefined,
): Promise<Dispatcher.ResponseData> {
  const checked = new SizeCheck(size);
  let bodyErr: Error | undefined;
  // An error or a premature close of `body` destroys `checked`, and undici then destroys the
  // upstream request, so the server never completes the PUT. `body` itself is only unpiped on
  // our own failures, never destroyed: the caller still owns the client's request stream.
  const onError = (e: Error) => { bodyErr ??= e; checked.destroy(e); };
  const onClose = () => { if (!body.readableEnded) checked.destroy(new IncompleteBodyError('request body aborted')); };
  body.once('error', onError);
  body.once('close', onClose);
  body.pipe(checked);
  const release = () => {
    body.off('error', onError);
    body.off('close', onClose);
    body.unpipe(checked);
    if (!checked.destroyed) checked.destroy();
  };
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (size !== undefined) headers['content-length'] = String(size);
  try {
    return await http.dispatch('PUT', target, ctx, headers, checked);
  } catch (e) {
    if (bodyErr !== undefined) throw bodyErr;
    if (e instanceof DavgateError) throw e;
    if ((e as { code?: string })?.code === 'ERR_STREAM_PREMATURE_CLOSE') throw new IncompleteBodyError('request body aborted');
    throw transportError(e, 'PUT');
  } finally {
    release();
  }
}
