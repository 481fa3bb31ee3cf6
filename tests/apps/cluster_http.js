'use strict';
// Test app for cluster mode: a plain Node http server on process.env.PORT that knows nothing about
// inherited sockets (pmsd's preload maps the listen onto fd 3). Answers 200 with its pid as the body and in
// X-Pid, so a client can see which instance served it.
//
// SIGINT/SIGTERM shut it down gracefully: no new connections, every request already received is answered
// (with Connection: close, and the connection ends after it), idle keep-alive connections are closed, and
// the process exits 0 once no connection is left.
//
// Environment: PORT; RESPONSE_DELAY_MS delays every response; READY_DELAY_MS calls process.send('ready')
// that long after listening (PM2's wait_ready); TRACE=1 prints one line per event (for tests).

const http = require('http');

const responseDelay = Number(process.env.RESPONSE_DELAY_MS || 0);
const trace = process.env.TRACE === '1'
  ? (line) => process.stdout.write(`cluster_http ${process.pid} ${line}\n`)
  : () => {};
let shuttingDown = false;
let readyTimer = null;

const server = http.createServer((req, res) => {
  trace(`request ${req.method} ${req.url}`);
  const answer = () => {
    const body = `${process.pid}\n`;
    const headers = { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), 'X-Pid': process.pid };
    // Decided when the response is written, not when the request came in: a request received before the
    // signal but answered after it must not leave its keep-alive connection open.
    if (shuttingDown) headers.Connection = 'close';
    res.writeHead(200, headers);
    res.end(body);
  };
  // Drain the request body (if any) before answering, so the connection stays usable.
  req.resume();
  if (responseDelay > 0) setTimeout(answer, responseDelay);
  else answer();
});

server.listen(process.env.PORT, () => {
  const address = server.address();
  trace(`listening ${typeof address === 'string' ? address : `${address.address}:${address.port}`}`);
  if (process.env.READY_DELAY_MS !== undefined) {
    readyTimer = setTimeout(() => process.send('ready'), Number(process.env.READY_DELAY_MS));
  }
});

function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  trace(`shutdown ${signal}`);
  if (readyTimer !== null) clearTimeout(readyTimer);
  // close() stops accepting, and (Node 19+) closes the connections that have no request in progress.
  // Connections with a request in progress end after their response, which carries Connection: close.
  // The callback runs once the last connection is gone.
  server.close(() => {
    trace('exit 0');
    process.exit(0);
  });
  // Before Node 19 close() left idle keep-alive connections open until keepAliveTimeout.
  if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
}

process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
