"""A small HTTP server for /metrics that a slow or hostile client cannot starve.

Why not `http.server`'s ThreadingHTTPServer: it gives every connection a thread that
waits on the socket without a limit, so 3,000 half-open requests held 3,000 threads
and scrapes waited minutes. Here one event loop holds every connection (thousands
cost memory, not threads):

- a request's line and headers must arrive within HEADER_TIMEOUT_S of its first byte
  (and at most MAX_HEADER_BYTES), an idle keep-alive connection is closed after
  IDLE_TIMEOUT_S, a response must be taken within WRITE_TIMEOUT_S;
- at most MAX_CONNECTIONS are held; a new one past that closes the oldest connection
  that has no request in progress, so a real scrape always gets in;
- the body is made by a bounded pool of BODY_WORKERS threads, and concurrent requests
  share the one reading in flight (a burst of 200 scrapes costs one reading).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

HEADER_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 60.0
WRITE_TIMEOUT_S = 30.0
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 512
BODY_WORKERS = 4
PATHS = ("/metrics", "/")


class ScrapeServer:
    """Serves `body()` at /metrics (and /) from a thread of its own; `shutdown()` stops it."""

    def __init__(self, body: Callable[[], bytes], content_type: str, addr: str = "127.0.0.1", port: int = 0,
                 *, max_connections: int = MAX_CONNECTIONS):
        self.body, self.content_type = body, content_type
        self.max_connections = max_connections
        self._pool = ThreadPoolExecutor(max_workers=BODY_WORKERS, thread_name_prefix="clusterkit-scrape")
        self._loop = asyncio.new_event_loop()
        self._idle: OrderedDict[asyncio.StreamWriter, None] = OrderedDict()   # no request in progress, oldest first
        self._open = 0
        self._inflight: asyncio.Future[bytes] | None = None
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(1024)
        sock.setblocking(False)
        self.server_address = sock.getsockname()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, sock=sock,
                                                                          limit=MAX_HEADER_BYTES))
        self.thread = threading.Thread(target=self._loop.run_forever, name="clusterkit-exporter", daemon=True)
        self.thread.start()

    # -- lifecycle ------------------------------------------------------------------------
    def shutdown(self) -> None:
        async def stop() -> None:
            self._server.close()
            for w in list(self._idle):
                w.close()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self.thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:   # http.server's name, for callers written against it
        self.shutdown()

    # -- connections -------------------------------------------------------------------------
    def _make_room(self) -> None:
        while self._open >= self.max_connections and self._idle:
            w, _ = self._idle.popitem(last=False)
            w.close()
            self._open -= 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._make_room()
        self._open += 1
        counted = True
        try:
            while True:
                self._idle[writer] = None
                try:   # the first byte of the next request, then the whole head within its limit
                    first = await asyncio.wait_for(reader.read(1), IDLE_TIMEOUT_S)
                    if not first:
                        return
                    head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT_S)
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                finally:
                    if writer not in self._idle:   # evicted for a newer connection while it dawdled
                        counted = False
                    self._idle.pop(writer, None)
                if not counted:
                    return
                keep = await self._respond(head, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.TimeoutError, OSError):
            return
        finally:
            self._idle.pop(writer, None)
            if counted:
                self._open -= 1
            writer.close()

    async def _respond(self, head: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True to keep the connection for the next."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._send(writer, 400, b"bad request\n", "text/plain", keep=False)
            return False
        method, target, version = parts
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method not in ("GET", "HEAD"):
            await self._send(writer, 405, b"only GET\n", "text/plain", keep=keep, extra=b"Allow: GET, HEAD\r\n")
        elif target.split("?")[0] not in PATHS:
            await self._send(writer, 404, b"try /metrics\n", "text/plain", keep=keep)
        else:
            try:
                body = await self._reading()
            except Exception as e:  # noqa: BLE001 - one failed reading is a 500, never a dead server
                await self._send(writer, 500, f"reading failed: {type(e).__name__}\n".encode(), "text/plain",
                                 keep=False)
                return False
            await self._send(writer, 200, body, self.content_type, keep=keep, head_only=method == "HEAD")
        return keep

    async def _reading(self) -> bytes:
        """The body, shared by every request that comes while one reading is in flight."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._loop.run_in_executor(self._pool, self.body))
        return await asyncio.shield(self._inflight)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str, *, keep: bool,
                    head_only: bool = False, extra: bytes = b"") -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  500: "Internal Server Error"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
                     f"Connection: {'keep-alive' if keep else 'close'}\r\n".encode() + extra + b"\r\n")
        if not head_only:
            writer.write(body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
