"""An aiohttp app serving on the listening socket systemd passes in as fd 3."""

import os
import socket

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=f"hello from pid {os.getpid()}\n")


app = web.Application()
app.router.add_get("/", hello)

if __name__ == "__main__":
    # run_app stops on SIGINT and SIGTERM, waiting up to shutdown_timeout for requests in flight.
    web.run_app(app, sock=socket.socket(fileno=3), shutdown_timeout=5)
