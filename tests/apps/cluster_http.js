'use strict';
// Test app for cluster mode: a plain Node http server on process.env.PORT that knows nothing about
// inherited sockets (pmsd's preload maps the listen onto fd 3). Answers 200 with its pid as the body and in
// X-Pid, so a client can see which instance served it.
//
// SIGINT/SIGTERM shut it down gracefully: no new connections, every request already received is answered
// (with Connection: close, and the connection ends after it), idle keep-alive connections are closed, and
// the process exits 0 once no connection is left.
//
// Environment: PORT; RESPONSE_DELAY_MS delays every response; SHUTDOWN_GRACE_MS (default 500) how long idle
// keep-alive connections stay open after the signal; READY_DELAY_MS calls process.send('ready')
// that long after listening (PM2's wait_ready); TRACE=1 prints one line per event (for tests).

const http = require('http');

const responseDelay = Number(process.env.RESPONSE_DELAY_MS || 0);
const shutdownGrace = Number(process.env.SHUTDOWN_GRACE_MS || 500);
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
  // close() stops accepting; its callback runs once the last connection is gone. Node 19+'s close() would
  // also close idle keep-alive connections at once, racing a request a client may be sending on one at that
  // very moment (the client would see a reset). So they stay open for a grace period, during which a request
  // on them is answered with Connection: close; whatever is still idle after it is closed.
  const closeIdle = typeof server.closeIdleConnections === 'function' ? server.closeIdleConnections : null;
  server.closeIdleConnections = () => {};
  server.close(() => {
    trace('exit 0');
    process.exit(0);
  });
  setTimeout(() => {
    if (closeIdle !== null) closeIdle.call(server);
  }, shutdownGrace).unref();
}

process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
