"""A tiny HTTP app: answers "hello" on $PORT."""

import http.server
import os


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from pmsd\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("PORT", "8311"))
print(f"listening on 127.0.0.1:{port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Hello).serve_forever()
