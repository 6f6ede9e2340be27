"""A small HTTP fault-injecting proxy on loopback, in front of an S3 server (moto or SeaweedFS).

``plan(n, method, path)`` decides, for the n-th request, one of:
- ``None``: forward it and relay the answer;
- ``"503"``: answer 503 SlowDown without forwarding (S3 throttling);
- ``"reset-before"``: reset the connection without forwarding (the request never happened);
- ``"reset-after"``: forward it, then reset instead of answering (the request happened; its answer is lost);
- ``"truncate"``: forward it, answer with the full Content-Length but only part of the body (or part of the
  head when there is no body), then reset: a body dropped mid-read;
- ``"flip"``: forward it and answer with one bit of the body flipped (``flip_at(body)`` picks the bit;
  default: a random one), as an unprotected link (plain HTTP) may;
- ``"flip-request"``: flip one bit of the request body before forwarding it (an upload corrupted in transit);
- ``"wrong-region"``: answer 400 AuthorizationHeaderMalformed without forwarding (AWS's answer to a request
  signed for another region than the bucket's).
The Host header is passed through unchanged, so SigV4 signatures stay valid upstream.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Plan = Callable[[int, str, str], str | None]
_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}
SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

WRONG_REGION = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>'
    b"<Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>"
)


def only(match: str, kind: str, times: int | None = None, method: str = "GET") -> Plan:
    """Fault requests whose path contains ``match`` (and whose method is ``method``) with ``kind``: the first
    ``times`` of them, or every one when ``times`` is None."""
    state = {"n": 0}
    lock = threading.Lock()

    def plan(n: int, m: str, path: str) -> str | None:
        if m != method or match not in path:
            return None
        with lock:
            state["n"] += 1
            hit = times is None or state["n"] <= times
        return kind if hit else None

    return plan


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def every(k: int, kinds: tuple[str, ...] = ("503", "reset-before", "reset-after")) -> Plan:
    """Fault every k-th request, cycling through ``kinds``."""
    state = {"i": 0}
    lock = threading.Lock()

    def plan(n: int, method: str, path: str) -> str | None:
        if n % k != 0:
            return None
        with lock:
            kind = kinds[state["i"] % len(kinds)]
            state["i"] += 1
        return kind

    return plan


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        plan: Plan,
        *,
        deny_missing: bool = False,
        flip_at: Callable[[bytes], int] | None = None,
        seed: int = 0,
    ) -> None:
        """``deny_missing``: answer 403 AccessDenied where upstream says 404 for a key, as AWS does for a
        caller whose ListBucket permission is prefix-conditioned. ``flip_at(body)``: which bit a ``flip``
        fault flips (default: a random one, from ``seed``)."""
        u = urlsplit(upstream)
        self.upstream_host = u.hostname or "127.0.0.1"
        self.upstream_port = u.port or 80
        self.plan = plan
        self.deny_missing = deny_missing
        rng = random.Random(seed)
        self.flip_at = flip_at or (lambda body: rng.randrange(len(body) * 8))
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reset(self) -> None:
                # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer"
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests += 1
                    n = proxy.requests
                fault = proxy.plan(n, self.command, self.path)
                if fault:
                    with proxy._lock:
                        proxy.counts[fault] += 1
                if fault == "503":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN)))
                    self.end_headers()
                    self.wfile.write(SLOWDOWN)
                    return
                if fault == "wrong-region":
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(WRONG_REGION)))
                    self.end_headers()
                    self.wfile.write(WRONG_REGION)
                    return
                if fault == "reset-before":
                    self._reset()
                    return
                if fault == "flip-request" and body:
                    body = flip_bit(body, random.randrange(len(body) * 8))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
                finally:
                    conn.close()
                if fault == "reset-after":
                    self._reset()
                    return
                if fault == "flip" and data and self.command != "HEAD":
                    data = flip_bit(data, proxy.flip_at(data))
                if fault == "truncate":
                    head = f"HTTP/1.1 {status} {reason}\r\n".encode()
                    for k, v in resp_headers:
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            head += f"{k}: {v}\r\n".encode()
                    head += f"Content-Length: {len(data)}\r\n\r\n".encode()
                    cut = head + data[: len(data) // 2] if data else head[: len(head) // 2]
                    self.wfile.write(cut)
                    self.wfile.flush()
                    self._reset()
                    return
                if (
                    proxy.deny_missing
                    and status == 404
                    and self.command in ("GET", "HEAD")
                    and "?" not in self.path
                ):
                    status, reason, resp_headers = 403, "Forbidden", [("Content-Type", "application/xml")]
                    data = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                    with proxy._lock:
                        proxy.counts["denied"] += 1
                self.send_response(status, reason)
                for k, v in resp_headers:
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                # a HEAD answer has no body but the length of the object it describes
                upstream_length = next((v for k, v in resp_headers if k.lower() == "content-length"), None)
                head = self.command == "HEAD" and upstream_length is not None
                self.send_header("Content-Length", upstream_length if head else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
