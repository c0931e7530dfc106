import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

// Bytes on a connection that do not parse as HTTP (lftp writes a stray header line after a
// PROPPATCH body; a proxy may cut a request short). fastify's own handler writes a 400 at once
// and destroys the socket, which also destroys the answer to the valid request before them,
// still being written. Here every complete request is answered in order, then the 400, then
// the connection closes.

export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const body = `${STATUS_CODES[status]}\n`;
  let answered = false;
  const answer = () => {
    if (answered) return;
    answered = true;
    if (!socket.writable) { socket.destroy(); return; }
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  };
  // The response node is writing on this socket now, if any; when it ends, node hands the socket
  // to the next pipelined request's response before our listener runs: wait for that one too.
  let closing = false;
  const afterPending = () => {
    const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    // An answer that said "Connection: close" (the client asked for it, or sent a TRACE whose
    // unannounced body is what fails to parse here) was the last word on this connection.
    if (pending?.shouldKeepAlive === false) closing = true;
    if (!pending || pending.writableFinished || pending.destroyed) {
      if (closing) socket.end();
      else answer();
      return;
    }
    // Its request lost the rest of its body (the client half-closed mid-body): it can never be
    // answered, and waiting for it would hold the connection until the idle timeout.
    if (!pending.req.complete) { socket.destroy(); return; }
    pending.once('finish', afterPending);
    pending.once('close', () => { if (!pending.writableFinished) socket.destroy(); }); // cut short: nothing more to say
  };
  afterPending();
}
