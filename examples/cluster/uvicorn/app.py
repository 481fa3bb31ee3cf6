"""A bare ASGI app; uvicorn serves it on the socket systemd passes in (`uvicorn app:app --fd 3`)."""

import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": f"hello from pid {os.getpid()}\n".encode()})
