"""A standard-library HTTP server on the listening socket systemd passes in (fd 3, LISTEN_FDS=1)."""

import contextlib
import http.server
import os
import signal
import socket
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # on shutdown, wait for the requests in flight


def inherited_socket() -> socket.socket:
    """The socket sd_listen_fds(3) describes: for this process only if LISTEN_PID is our pid."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        sys.exit("no listening socket passed in: start this app with pmsd in cluster mode (or a socket unit)")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=3)


def sd_notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.connect("\0" + address[1:] if address.startswith("@") else address)
            notify.sendall(message.encode())


def main() -> None:
    server = Server(("", 0), Hello, bind_and_activate=False)  # no bind, no listen: systemd did both
    server.socket.close()
    server.socket = inherited_socket()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM too ends serve_forever()
    sd_notify("READY=1")  # wait_ready: this instance is ready
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT, pmsd's and PM2's stop signal
        server.serve_forever()
    server.server_close()  # joins the request threads


if __name__ == "__main__":
    main()
