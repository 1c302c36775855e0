"""A local stand-in for the Azure endpoints the benchmark calls (a script, run by bench/run.py).

    python bench/localazure.py      # prints "port N", then serves until stdin closes

It answers every POST at once with a small fixed body of the right shape: Custom Vision
classify and detect, Image Analysis 4.0 analyze. It reads the whole upload (a real service
does), keeps connections alive (HTTP/1.1, one thread per connection, as Azure's front doors
do) and counts what it was sent: ``GET /count`` answers ``{"posts": N, "bytes": M}``. It runs
in a process of its own, so that serving costs the process being measured nothing.
"""

import json
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

CLASSIFY = {
    "id": "8d0c8b3d-4e2c-4f61-9a3e-0d0b5a2e6f11",
    "project": "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17",
    "iteration": "a1b2c3d4-0000-4000-8000-000000000001",
    "created": "2024-05-31T12:00:00.000Z",
    "predictions": [
        {"probability": 0.91, "tagId": "t1", "tagName": "coffee"},
        {"probability": 0.07, "tagId": "t2", "tagName": "tea"},
    ],
}
DETECT = dict(
    CLASSIFY,
    predictions=[
        {
            "probability": 0.88,
            "tagId": "t3",
            "tagName": "cup",
            "boundingBox": {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.25},
        }
    ],
)
ANALYZE = {
    "modelVersion": "2023-10-01",
    "metadata": None,  # the size sent is not known here: the client's own is used
    "tagsResult": {"values": [{"name": "cup", "confidence": 0.97}]},
    "captionResult": {"text": "a cup of coffee", "confidence": 0.81},
    "objectsResult": {
        "values": [
            {
                "boundingBox": {"x": 10, "y": 20, "w": 100, "h": 80},
                "tags": [{"name": "cup", "confidence": 0.77}],
            }
        ]
    },
    "readResult": {"blocks": [{"lines": [{"text": "SCENE 42", "words": []}]}]},
}


class Counter:
    def __init__(self) -> None:
        self.posts = 0
        self.bytes = 0
        self.lock = threading.Lock()


COUNTER = Counter()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the plugins' session expects
    # Status line, headers and body in one segment, sent at once: with Nagle's algorithm and
    # the client's delayed ACKs, a body written apart waits 40 ms, which would drown the
    # client-side costs the benchmark is about.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with COUNTER.lock:
            COUNTER.posts += 1
            COUNTER.bytes += length
        if "/detect/" in self.path:
            body = DETECT
        elif "/classify/" in self.path or self.path.rstrip("/").endswith("/image"):
            body = CLASSIFY
        else:
            body = ANALYZE
        self.reply(body)

    def do_GET(self) -> None:
        with COUNTER.lock:
            self.reply({"posts": COUNTER.posts, "bytes": COUNTER.bytes})

    def reply(self, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a line per request would cost more than the request


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or ends)
    server.shutdown()


if __name__ == "__main__":
    main()
