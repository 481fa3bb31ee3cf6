'use strict';
// pmsd's preload for Node apps: `node --require <pmsd>/preload/node.js app.js`.
//
// In cluster mode pmsd runs N instances of a systemd template unit that all share ONE listening socket, held
// by a socket unit. systemd hands it to every instance the sd_listen_fds(3) way: fd 3, LISTEN_FDS=1,
// LISTEN_PID=<the instance's pid>, LISTEN_FDNAMES=<name>; pmsd adds PMSD_LISTEN_PORT=<the socket's port>.
// The kernel then spreads accept() among the instances: the job PM2's cluster master does. But Node apps know
// nothing of fd 3; they call `server.listen(process.env.PORT)`, which would fail with EADDRINUSE because
// systemd already bound the port. So this file:
//   - takes the inherited fds (and removes LISTEN_* from the environment, so child processes, which have
//     other pids, never misread them; see sd_listen_fds(3) on unset_environment);
//   - makes a listen() on PMSD_LISTEN_PORT serve on the inherited fd instead (each fd once);
//   - gives apps a process.send() when there is no PM2 IPC channel, so PM2's `process.send('ready')`
//     (wait_ready) becomes sd_notify READY=1.
// It prints nothing unless something is wrong, and needs nothing but Node's own modules.

const net = require('net');
const childProcess = require('child_process');

const SD_LISTEN_FDS_START = 3;
const MAX_BACKLOG = 2147483647; // listen(2) takes an int
const inherited = []; // {fd, name, used}

(function takeListenFds() {
  const env = process.env;
  if (env.LISTEN_FDS === undefined || env.LISTEN_PID !== String(process.pid)) {
    return; // not socket-activated, or the variables were meant for another process
  }
  const count = Number.parseInt(env.LISTEN_FDS, 10);
  const names = (env.LISTEN_FDNAMES || '').split(':');
  for (let i = 0; i < (count > 0 ? count : 0); i++) {
    inherited.push({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown', used: false });
  }
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
})();

// The port a listen() call asks for, or undefined when it asks for something else (a path, a handle, an fd).
// Mirrors how net.Server#listen reads its arguments: (options[, cb]), (path[, backlog][, cb]),
// (port[, host][, backlog][, cb]).
function requestedPort(args) {
  const first = args[0];
  if (typeof first === 'object' && first !== null) {
    if (first._handle || first.handle || first.fd !== undefined) return undefined;
    return first.port;
  }
  if (typeof first === 'number' || typeof first === 'string') return first;
  return undefined;
}

function requestedBacklog(args) {
  const first = args[0];
  if (typeof first === 'object' && first !== null) return first.backlog;
  // (port, backlog) or (port, host, backlog)
  for (const arg of args.slice(1, 3)) {
    if (typeof arg === 'number') return arg;
  }
  return undefined;
}

const listenPort = Number(process.env.PMSD_LISTEN_PORT);
if (inherited.length > 0 && Number.isInteger(listenPort) && listenPort > 0) {
  const originalListen = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(...args) {
    const port = requestedPort(args);
    const wanted = port === undefined || port === null || port === '' ? NaN : Number(port);
    const socket = wanted === listenPort ? inherited.find((entry) => !entry.used) : undefined;
    if (socket === undefined) {
      return originalListen.apply(this, args);
    }
    socket.used = true;
    // The host is ignored: systemd bound the address. Node calls listen(2) again on the fd, which sets the
    // backlog of the socket every instance shares; without a backlog from the app it would pass 511. Ask for
    // the most instead, which the kernel caps at net.core.somaxconn: systemd's own default (Backlog= in
    // systemd.socket(5) defaults to 4294967295 "so that the sysctl takes full effect").
    // (Node reads the backlog of an fd listen from the arguments, not from the options object.)
    const backlog = requestedBacklog(args);
    const handle = { fd: socket.fd };
    if (args[0] !== null && typeof args[0] === 'object' && args[0].signal) handle.signal = args[0].signal;
    const forwarded = [handle, backlog === undefined ? MAX_BACKLOG : backlog];
    const callback = args[args.length - 1];
    if (typeof callback === 'function') forwarded.push(callback);
    return originalListen.apply(this, forwarded);
  };
}

// Under systemd there is no PM2 IPC channel. PM2 apps signal readiness with process.send('ready')
// (wait_ready); here that becomes READY=1 on $NOTIFY_SOCKET. systemd-notify runs as a child, so the
// unit needs NotifyAccess=all; it also waits for a BARRIER=1 reply, so it is still alive (and its cgroup
// known) when the manager reads READY=1. Other messages have nobody to read them and are dropped.
if (typeof process.send !== 'function') {
  let warned = false;
  process.send = function send(message, ...rest) {
    if (message === 'ready' && process.env.NOTIFY_SOCKET) {
      childProcess.execFile('systemd-notify', ['--ready'], (error) => {
        if (!error || warned) return;
        warned = true;
        if (error.code === 'ENOENT') {
          process.stderr.write('pmsd: systemd-notify is not on PATH; cannot tell systemd this app is ready\n');
        } else {
          process.stderr.write(`pmsd: systemd-notify --ready failed: ${error.message.trim()}\n`);
        }
      });
    }
    const callback = rest[rest.length - 1];
    if (typeof callback === 'function') process.nextTick(callback, null);
    return true;
  };
}
