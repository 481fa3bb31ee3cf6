'use strict';
// pmsd's preload for Node apps: `node --require <pmsd>/preload/node.js app.js`.
//
// In cluster mode pmsd runs N instances of a systemd template unit that all share the app's listening sockets,
// held by a socket unit. systemd hands them to every instance the sd_listen_fds(3) way: fds 3, 4, ...,
// LISTEN_FDS=<how many>, LISTEN_PID=<the instance's pid>, LISTEN_FDNAMES=<names>. The kernel then spreads
// accept() among the instances: the job PM2's cluster master does. But Node apps know nothing of fd 3; they
// call `server.listen(process.env.PORT)`, which would fail with EADDRINUSE because systemd already bound the
// port. So this file:
//   - takes the inherited fds (and removes LISTEN_* from the environment, so child processes, which have
//     other pids, never misread them; see sd_listen_fds(3) on unset_environment);
//   - makes a listen() on a shared port serve on that port's inherited fd instead (each fd once);
//   - optionally finds the ports an app listens on that pmsd does not know yet (port discovery);
//   - gives apps a process.send() when there is no PM2 IPC channel, so PM2's `process.send('ready')`
//     (wait_ready) becomes sd_notify READY=1;
//   - optionally turns the stop signal into PM2's 'shutdown' message (shutdown_with_message).
// It prints nothing unless something is wrong, and needs nothing but Node's own modules.
//
// The environment it reads (all set by pmsd in the unit; without them an app runs exactly as under plain node):
//   PMSD_LISTEN_PORTS=8000,9000   the ports of the inherited fds, in their order: 8000 is fd 3, 9000 fd 4.
//   PMSD_LISTEN_PORT=8000         the older form: one port, fd 3. Read only when PMSD_LISTEN_PORTS is unset.
//   PMSD_DISCOVER_PORTS=1         report ports the app listens on that no inherited fd serves (below).
//   PMSD_SHUTDOWN_WITH_MESSAGE=1  SIGINT becomes process.emit('message', 'shutdown') (below).
//   PMSD_READY_AFTER_MS=3000      wait_ready: READY=1 after this long if the app has not sent 'ready' (below).
//   NOTIFY_SOCKET                 set by systemd (Type=notify or NotifyAccess=); needed for READY and discovery.
// The PMSD_* switches but the ports are removed from process.env once read, like LISTEN_*:
// they are meant for the unit's main process only. A child the app forks (child_process.fork passes on
// --require) would otherwise overwrite the unit's one StatusText with its own ports, or be sent a 'shutdown'
// message it never asked for.

const net = require('net');
const childProcess = require('child_process');

const SD_LISTEN_FDS_START = 3;
const MAX_BACKLOG = 2147483647; // listen(2) takes an int
const env = process.env;

function warn(line) {
  process.stderr.write(`pmsd: ${line}\n`);
}

const discoverPorts = env.PMSD_DISCOVER_PORTS === '1';
const shutdownWithMessage = env.PMSD_SHUTDOWN_WITH_MESSAGE === '1';
const readyAfterMs = Number.parseInt(env.PMSD_READY_AFTER_MS || '', 10);
delete env.PMSD_DISCOVER_PORTS;
delete env.PMSD_SHUTDOWN_WITH_MESSAGE;
delete env.PMSD_READY_AFTER_MS;

// How many fds systemd passed to this very process (0 when not socket-activated, or when the variables were
// meant for another process: sd_listen_fds(3) checks LISTEN_PID for exactly that reason).
const inheritedCount = (function takeListenFds() {
  if (env.LISTEN_FDS === undefined || env.LISTEN_PID !== String(process.pid)) return 0;
  const count = Number.parseInt(env.LISTEN_FDS, 10);
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  return count > 0 ? count : 0;
})();

// A TCP port number as Node itself reads one (validatePort: a number, or a string holding one, in 0..65535),
// or undefined.
function portNumber(value) {
  if (typeof value !== 'number' && (typeof value !== 'string' || value.trim() === '')) return undefined;
  const number = Number(value);
  return Number.isInteger(number) && number >= 0 && number <= 65535 ? number : undefined;
}

// The shared ports, one entry per inherited fd, in fd order (systemd passes the fds in the order of the socket
// unit's ListenStream= lines, and pmsd writes PMSD_LISTEN_PORTS in that same order).
const shared = []; // {port, fd, used}
const announced = new Set(); // every port pmsd named, with or without an fd: never "discovered"
(function sharedPorts() {
  const list = env.PMSD_LISTEN_PORTS !== undefined ? env.PMSD_LISTEN_PORTS : env.PMSD_LISTEN_PORT;
  if (list === undefined || list.trim() === '') return;
  const variable = env.PMSD_LISTEN_PORTS !== undefined ? 'PMSD_LISTEN_PORTS' : 'PMSD_LISTEN_PORT';
  const words = env.PMSD_LISTEN_PORTS !== undefined ? list.split(',') : [list];
  words.forEach((word, index) => {
    const port = portNumber(word);
    if (port === undefined || port === 0) {
      if (inheritedCount > 0) warn(`${variable}=${list}: ${JSON.stringify(word)} is not a port; ignoring it`);
      return; // its fd stays unused, and the ports after it keep their own fds
    }
    announced.add(port);
    if (index < inheritedCount) shared.push({ port, fd: SD_LISTEN_FDS_START + index, used: false });
  });
  if (inheritedCount > 0 && words.length !== inheritedCount) {
    warn(`${variable}=${list} names ${words.length} port(s) but systemd passed ${inheritedCount} socket(s)`);
  }
})();

// Port discovery needs somebody to tell: the unit's StatusText, written through $NOTIFY_SOCKET. Without it
// nobody would ever hand the port over, and an app left on an ephemeral port would be unreachable; so such a
// listen binds the port itself, as under plain node, and the first one says why.
const discovering = discoverPorts && Boolean(env.NOTIFY_SOCKET);
let cannotDiscover = discoverPorts && !discovering;

// systemd-notify runs as a child, so the unit needs NotifyAccess=all. It sends the message, then BARRIER=1
// with the write end of a pipe, and waits until the manager has closed it (sd_notify(3), sd_notify_barrier):
// so it is still alive, and its cgroup known, when the manager reads the message. Failures are told once per
// purpose; the app carries on either way.
const notifyWarned = new Set();
function notify(argument, purpose, callback) {
  childProcess.execFile('systemd-notify', [argument], (error) => {
    if (error && !notifyWarned.has(purpose)) {
      notifyWarned.add(purpose);
      if (error.code === 'ENOENT') {
        warn(`systemd-notify is not on PATH; cannot tell systemd ${purpose}`);
      } else {
        warn(`systemd-notify ${argument} failed: ${error.message.trim()}`);
      }
    }
    if (callback) callback();
  });
}

// ---- port discovery
// The unit's StatusText is one string that each STATUS= replaces (sd_notify(3)), so every report carries the
// whole set found so far, and reports never overlap: two systemd-notify processes racing could deliver an
// older, smaller set last. listen() calls made in the same tick (an app opening two servers) are sent together.
const discovered = new Set();
let reportedText = '';
let reporting = false;
function statusText() {
  return `pmsd-ports: ${[...discovered].sort((a, b) => a - b).join(' ')}`;
}
function reportPorts() {
  if (reporting) return; // the running report sends again when it is done, if the set grew meanwhile
  reporting = true;
  setImmediate(() => {
    const text = statusText();
    notify(`--status=${text}`, 'which ports this app listens on', () => {
      reportedText = text;
      reporting = false;
      if (statusText() !== reportedText) reportPorts();
    });
  });
}

// The port a listen() call asks for, or undefined when it asks for something else (a path, a handle, an fd).
// Mirrors how net.Server#listen reads its arguments: (options[, cb]), (path[, backlog][, cb]),
// (port[, host][, backlog][, cb]); a string that Number() reads as a port is a port, others are pipe paths.
function requestedPort(args) {
  const first = args[0];
  if (typeof first === 'object' && first !== null) {
    if (first._handle || first.handle || first.fd !== undefined) return undefined;
    return portNumber(first.port);
  }
  return portNumber(first);
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

if (shared.length > 0 || discoverPorts) {
  const originalListen = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(...args) {
    const port = requestedPort(args);
    if (port === undefined || port === 0) return originalListen.apply(this, args); // paths, fds, port 0
    const socket = shared.find((entry) => entry.port === port && !entry.used);
    if (socket !== undefined) {
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
    }
    if (!discoverPorts || announced.has(port)) {
      // A shared port asked for a second time (its fd is taken), or a port pmsd named but systemd passed no fd
      // for: bind it for real, as plain node would (and fail with EADDRINUSE if systemd holds it).
      return originalListen.apply(this, args);
    }
    if (!discovering) {
      if (cannotDiscover) {
        cannotDiscover = false;
        warn(`PMSD_DISCOVER_PORTS=1 but NOTIFY_SOCKET is not set: port ${port} (and any other) is bound `
          + 'directly, not reported');
      }
      return originalListen.apply(this, args);
    }
    // A port pmsd does not know. Binding it would take it from the other instances (or fail with EADDRINUSE
    // once pmsd shares it), so listen on an ephemeral port instead, with the same host, backlog and callback:
    // the app carries on as if it were listening, nobody connects there, and pmsd, having read the port from
    // the StatusText, restarts the instance with a socket for it.
    if (!discovered.has(port)) {
      discovered.add(port);
      warn(`port ${port} is not yet one of this app's shared ports; pmsd will hand it over `
        + '(listening on an ephemeral port meanwhile)');
      reportPorts();
    }
    const diverted = args.slice();
    diverted[0] = typeof args[0] === 'object' ? { ...args[0], port: 0 } : 0;
    return originalListen.apply(this, diverted);
  };
}

// ---- wait_ready
// Under systemd there is no PM2 IPC channel. PM2 apps signal readiness with process.send('ready')
// (wait_ready); here that becomes READY=1 on $NOTIFY_SOCKET. Other messages have nobody to read them and are
// dropped. PM2 calls an app online once listen_timeout has passed even if it never said 'ready' (its
// wait_ready only delays the 'online' event); the timer below does the same, so systemd's start job ends
// there rather than failing at TimeoutStartSec=, which pmsd sets a little later. The timer is unref'd: it
// never keeps an app alive.
let readySent = false;
function sendReady() {
  if (readySent || !env.NOTIFY_SOCKET) return;
  readySent = true;
  notify('--ready', 'this app is ready');
}
if (readyAfterMs > 0) setTimeout(sendReady, readyAfterMs).unref();
if (typeof process.send !== 'function') {
  process.send = function send(message, ...rest) {
    if (message === 'ready') sendReady();
    const callback = rest[rest.length - 1];
    if (typeof callback === 'function') process.nextTick(callback, null);
    return true;
  };
}

// ---- shutdown_with_message
// PM2's shutdown_with_message stops (and reloads) an app by sending it the IPC message 'shutdown' instead of
// SIGINT; the app closes and exits by itself, or PM2 kills it after kill_timeout. systemd can only signal:
// KillSignal=SIGINT, then SIGKILL after TimeoutStopSec= (kill_timeout). So SIGINT is turned back into the
// message here, for apps that listen for messages. An app with no 'message' listener would never hear it, so
// it gets the signal as under plain node instead: this handler steps aside and SIGINT is raised again, which
// then takes its default action (the process dies of SIGINT).
// The app's own SIGINT listeners are on the same event as this one, and Node calls every listener: when the
// app has some, they run on this very SIGINT, after this one (the preload's is registered first), so the app
// sees the message first and then its SIGINT handler. That differs from PM2, where an app with
// shutdown_with_message gets no signal at all; but the app's handler is what it wrote to stop cleanly, and
// silencing it could leave an app that only reacts to SIGINT running until SIGKILL. Without a message
// listener nothing is raised again while the app has SIGINT listeners (they are running now; raising again
// would run them twice). The decision is made on every SIGINT, so a listener added later counts.
// This handler is always installed with the option, so process.listenerCount('SIGINT') is one more than the
// app's own.
if (shutdownWithMessage) {
  const onSigint = () => {
    if (process.listenerCount('message') > 0) {
      process.emit('message', 'shutdown');
      return;
    }
    if (process.listenerCount('SIGINT') > 1) return; // the app's own listeners handle this SIGINT
    // Removing the last listener puts back the default disposition (Node closes its signal watcher, and
    // libuv restores SIG_DFL), so the signal raised now kills the process as if nothing had caught it.
    process.removeListener('SIGINT', onSigint);
    process.kill(process.pid, 'SIGINT');
  };
  process.on('SIGINT', onSigint);
}

// The app's require.cache holds only its own modules, as under plain node (the preload stays in effect).
delete require.cache[__filename];
