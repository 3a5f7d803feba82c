"""A loopback stand-in for the Hugging Face Hub's file routes, for ``hunyuan-i2v download``.

What huggingface_hub asks (2.x, read in its file_download.py): ``HEAD /{repo}/resolve/{revision}/{path}``, whose
``X-Repo-Commit`` and ``ETag`` headers it requires and whose ``Content-Length`` (or ``X-Linked-Size``) is the
file's size; then ``GET`` on the same URL, with ``Range: bytes=N-`` to resume, answered 206 with
``Content-Range``. Errors carry ``X-Error-Code`` (``EntryNotFound``, ``GatedRepo``, ``RepoNotFound``), which the
library turns into its exception classes.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn:
    def __init__(self):
        self.files: dict[str, bytes] = {}  # "/{repo}/resolve/main/{path}" -> content
        self.errors: dict[str, tuple[int, str]] = {}  # same keys -> (status, X-Error-Code)
        self.cut_after: dict[str, int] = {}  # same keys -> bytes sent before the first GET is cut off
        self.refuse_ranges: dict[str, int] = {}  # same keys -> the status a GET with a Range header gets
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.authorization: dict[str, list[str | None]] = {}  # path -> the Authorization header of each request
        self.cdn = False  # True: /resolve/ answers 302 to /cdn/ on "localhost", as the Hub sends LFS files to a CDN
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                stand_in._answer(self, head=True)

            def do_GET(self):
                stand_in._answer(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, path: str, content: bytes) -> str:
        key = f"/{repo}/resolve/main/{path}"
        self.files[key] = content
        return key

    def gets(self, key: str) -> list[str | None]:
        """The Range headers of the GETs of ``key`` (None: the whole file)."""
        return [r for method, path, r in self.requests if method == "GET" and path == key]

    def _answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        path = handler.path.split("?")[0]
        byte_range = handler.headers.get("Range")
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", path, byte_range))
            self.authorization.setdefault(path, []).append(handler.headers.get("Authorization"))
            cut = None if head else self.cut_after.pop(path, None)
        if self.cdn and "/resolve/" in path and path in self.files:
            content = self.files[path]
            handler.send_response(302)
            handler.send_header("Location", f"http://localhost:{self.server.server_address[1]}/cdn{path}")
            handler.send_header("X-Repo-Commit", COMMIT)
            handler.send_header("X-Linked-Size", str(len(content)))
            handler.send_header("X-Linked-Etag", f'"{len(content):x}"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if path.startswith("/cdn/"):
            path = path[len("/cdn"):]
        refused = None if head or not byte_range else self.refuse_ranges.get(path)
        if path in self.errors or path not in self.files or refused:
            status, code = (refused, "") if refused else self.errors.get(path, (404, "EntryNotFound"))
            handler.send_response(status)
            handler.send_header("X-Error-Code", code)
            handler.send_header("X-Repo-Commit", COMMIT)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        content = self.files[path]
        start = int(byte_range.split("=")[1].split("-")[0]) if byte_range else 0
        body = content[start:]
        handler.send_response(206 if byte_range else 200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{len(content):x}-{hash(content) & 0xffffffff:x}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(body)))
        if byte_range:
            handler.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        if cut is not None:
            handler.send_header("Connection", "close")
        handler.end_headers()
        if head:
            return
        if cut is not None:  # a connection that breaks mid-file
            handler.wfile.write(body[:cut])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(body)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
