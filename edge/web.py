"""edge's HTTP endpoint: ``/metrics``, ``/healthz`` and the live debug view, in one named thread.

Served by the standard library's :class:`http.server.ThreadingHTTPServer` (no extra dependency): the
traffic is one Prometheus scrape every few seconds, a health probe, and now and then a person looking
at a camera while placing lines and zones. Every request runs in its own short-lived daemon thread, so
nothing here ever touches the asyncio loop; the server is fed through plain callables that the
composition root wires to the pipeline (they are called from those threads and must be thread-safe):

``registry``
    The :class:`prometheus_client.CollectorRegistry` of :class:`edge.metrics.Metrics`; ``/metrics``
    renders it (OpenMetrics when the scraper asks for it).
``health() -> Health``
    ``/healthz`` answers 200 when ``ok``, else 503; both with a JSON body. Defaults to
    :func:`health_from_cameras` over ``cameras_info``.
``cameras_info() -> Sequence[CameraInfo]``
    Camera names, capture state and recent processed fps, for ``/`` and ``/api/cameras``. Names not
    listed here get 404 on the per-camera routes.
``jpeg_source(camera) -> bytes | None``
    The latest (annotated) frame of a camera as JPEG, or ``None`` when there is none yet. Called only
    for ``snapshot.jpg`` and while an MJPEG stream is open, so encoding happens only while someone
    watches; :meth:`WebServer.watchers` tells the pipeline whether anyone does. Returning the very same
    ``bytes`` object again means "no new frame" and is not re-sent on a stream.
``event_snapshot(camera) -> bytes | None``
    The JPEG of the camera's latest event (:class:`edge.snapshots.SnapshotEncoder`), served at the stable
    URL ``/cameras/<name>/event.jpg`` (503 before the first event); the same picture as the retained
    ``<camera>/snapshot`` MQTT topic.
``geometry(camera) -> Mapping | None``
    The camera's configured lines and zones as JSON-ready data, drawn over the stream on the camera
    page. Shape::

        {"normalized": false,            # true: coordinates are fractions of the frame size
         "lines": [{"name": "door", "points": [[x, y], [x, y]]}],
         "zones": [{"name": "lobby", "points": [[x, y], [x, y], [x, y], ...]}]}

    It is fetched again every few seconds, so a SIGHUP reload shows up without reloading the page.

Routes: ``/metrics``, ``/healthz``, ``/`` (camera list), ``/api/cameras``, ``/cameras/<name>`` (page),
``/cameras/<name>/geometry.json``, ``/cameras/<name>/snapshot.jpg``, ``/cameras/<name>/stream.mjpg``,
``/cameras/<name>/event.jpg``.

The server binds ``127.0.0.1`` by default: nothing here is authenticated. It cannot be starved: the request
line and headers must arrive whole within ``header_timeout_s`` (not per read, so a client dripping one
header line every few seconds is cut off), open connections are capped and, at the cap, the oldest one
still sending its headers makes room for a new one, MJPEG streams notice a closed client even while their
camera has no frames, and a ``Host`` header outside the allow-list gets 403 (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import ipaddress
import json
import logging
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

# Lines and zone outlines on the camera page are drawn in this colour, opaque, so a screenshot test can
# look for it; it is rare in camera images.
OVERLAY_COLOR = "#ff00ff"
MJPEG_BOUNDARY = "edgeframe"


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """What the debug view and the default health check know about one camera."""

    name: str
    state: str  # one of edge.metrics.CAMERA_STATES
    fps: float  # frames processed per second, recently
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Health:
    """The ``/healthz`` verdict: ``ok`` or not, and why, with optional per-camera detail."""

    ok: bool
    reason: str = ""
    cameras: Mapping[str, str] | None = None
    degraded: tuple[str, ...] = ()
    """Running, but not as it should (e.g. the outbox disk is full): still 200, ``status: degraded``."""

    def to_json(self) -> bytes:
        status = ("degraded" if self.degraded else "ok") if self.ok else "unhealthy"
        body: dict[str, Any] = {"status": status}
        if self.reason:
            body["reason"] = self.reason
        if self.degraded:
            body["degraded"] = list(self.degraded)
        if self.cameras is not None:
            body["cameras"] = dict(self.cameras)
        return json.dumps(body, sort_keys=True).encode()


def health_from_cameras(cameras: Sequence[CameraInfo]) -> Health:
    """Healthy when there is at least one enabled camera and every enabled one is online with fps > 0.

    "fps > 0" is what "frames flow" means: a camera can report ``online`` while the detector behind it
    is stuck, and then its processed fps falls to zero.
    """
    enabled = [c for c in cameras if c.enabled]
    detail = {c.name: c.state for c in enabled}
    if not enabled:
        return Health(ok=False, reason="no enabled camera", cameras=detail)
    problems = []
    for c in enabled:
        if c.state != "online":
            problems.append(f"camera {c.name} is {c.state}")
        elif c.fps <= 0.0:
            problems.append(f"camera {c.name} is online but no frames are processed")
    if problems:
        return Health(ok=False, reason="; ".join(problems), cameras=detail)
    return Health(ok=True, cameras=detail)


class _Server(ThreadingHTTPServer):
    # Request threads never outlive the process; stop() ends open streams through the stop event.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], web: WebServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.web = web
        self._active_lock = threading.Lock()
        # Open connections -> monotonic time their current request began, or None while it is served.
        self._conns: dict[socket.socket, float | None] = {}
        self._refusing = False
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per connection, so the connection count is what bounds the threads.
        now = time.monotonic()
        with self._active_lock:
            refuse = len(self._conns) >= self.web.max_connections
            if refuse:
                # Make room by dropping the connection that has been sending headers the longest: a slow
                # client must not lock out a health probe that sends its request at once.
                waiting = [(t, c) for c, t in self._conns.items() if t is not None]
                if waiting:
                    _, victim = min(waiting, key=lambda tc: tc[0])
                    self._conns.pop(victim)
                    _hang_up(victim)
                    refuse = False
            if not refuse:
                self._conns[request] = now
            changed = refuse != self._refusing
            self._refusing = refuse
        if changed:
            if refuse:
                log.warning("HTTP: %s connections open, refusing new ones", self.web.max_connections)
            else:
                log.info("HTTP: accepting connections again")
        if refuse:
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def service_actions(self) -> None:
        # Called by serve_forever every poll interval: cut off requests whose headers are overdue.
        limit = time.monotonic() - self.web.header_timeout_s
        with self._active_lock:
            late = [c for c, t in self._conns.items() if t is not None and t < limit]
            for c in late:
                self._conns[c] = None  # hung up once; its thread removes it on the way out
        for c in late:
            log.debug("HTTP: request headers not complete within %.0f s; closing", self.web.header_timeout_s)
            _hang_up(c)

    def request_stage(self, request: socket.socket, started: float | None) -> None:
        """Mark a connection as reading a request (since ``started``) or serving one (``None``)."""
        with self._active_lock:
            if request in self._conns:
                self._conns[request] = started

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The base class prints a traceback to stderr for everything, including clients that hang up
        # between two keep-alive requests.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            log.debug("HTTP client %s went away: %s", client_address, exc)
        else:
            log.error("HTTP request from %s failed", client_address, exc_info=exc)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._conns.pop(request, None)


def _hang_up(sock: socket.socket) -> None:
    # shutdown() (not close()) wakes the handler thread blocked in recv(); that thread closes the socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_allowed(host_header: str, bind_host: str, extra: Sequence[str] = ()) -> bool:
    """Whether a request's ``Host`` header names this server (a DNS-rebinding guard).

    Allowed: the localhost names, the bind address, the names in ``extra`` (``"*"`` allows any), and when
    bound to every interface (``0.0.0.0`` / ``::``) also any IP literal and this machine's host name. A
    rebinding attack always arrives with the attacker's *domain name* in ``Host``, so IP literals are safe.
    """
    if "*" in extra:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if host in _LOCAL_NAMES or host.endswith(".localhost") or host == bind_host.lower():
        return True
    if host in {e.lower().rstrip(".") for e in extra}:
        return True
    if bind_host in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return host in {socket.gethostname().lower(), f"{socket.gethostname().lower()}.local"}
        return True
    return False


class WebServer:
    """The HTTP server; see the module docstring for what each callable provides.

    ``host``, ``port``: bind address; port ``0`` picks a free port, readable from :attr:`port` after
    :meth:`start`. ``mjpeg_fps``: frames per second sent to each stream viewer at most; lower saves the
    JPEG encoding and bandwidth of a debug view, higher makes motion smoother (issue 9 wants >= 5).
    ``max_streams``: open MJPEG streams at most (all cameras); more get 503, so a forgotten browser
    tab cannot multiply encoding work without bound. ``max_connections``: open connections at most
    (each holds one thread); at the cap the connection that has been sending its headers the longest is
    dropped for the new one, and if every connection is busy the new one is closed. ``request_timeout_s``:
    a client that neither sends nor reads for this long is dropped (frees its thread and connection slot).
    ``header_timeout_s``: the whole request line and headers must arrive within this; lower frees slots
    from slow or idle keep-alive clients sooner, higher tolerates very slow links. ``allowed_hosts``: extra
    ``Host`` names accepted besides localhost and the bind address (see :func:`host_allowed`), ``"*"`` for
    any; others get 403. ``degraded() -> [reason, ...]``: conditions that do not stop the daemon but need
    an operator (``Outbox.problems``: a full disk); ``/healthz`` stays 200 with ``status: degraded``. Settable
    after construction (the outbox is built after the endpoint starts).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9108,
        *,
        registry: CollectorRegistry | None = None,
        health: Callable[[], Health] | None = None,
        cameras_info: Callable[[], Sequence[CameraInfo]] | None = None,
        jpeg_source: Callable[[str], bytes | None] | None = None,
        geometry: Callable[[str], Mapping[str, Any] | None] | None = None,
        event_snapshot: Callable[[str], bytes | None] | None = None,
        mjpeg_fps: float = 10.0,
        max_streams: int = 4,
        max_connections: int = 32,
        request_timeout_s: float = 30.0,
        header_timeout_s: float = 10.0,
        allowed_hosts: Sequence[str] = (),
        degraded: Callable[[], Sequence[str]] | None = None,
        thread_name: str = "edge-http",
    ) -> None:
        if mjpeg_fps <= 0:
            raise ValueError(f"mjpeg_fps must be positive, got {mjpeg_fps}")
        if max_streams < 0:
            raise ValueError(f"max_streams must be >= 0, got {max_streams}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.host = host
        self._requested_port = port
        self.registry = registry
        self.cameras_info = cameras_info
        self.jpeg_source = jpeg_source
        self.geometry = geometry
        self.event_snapshot = event_snapshot
        self.mjpeg_interval_s = 1.0 / mjpeg_fps
        self.max_streams = max_streams
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self.header_timeout_s = header_timeout_s
        self.allowed_hosts = tuple(allowed_hosts)
        self._health = health
        self.degraded = degraded
        self._thread_name = thread_name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self._streams_lock = threading.Lock()
        self._streams: dict[str, int] = {}

    @property
    def port(self) -> int:
        """The bound port (the real one when ``port=0`` was asked); only valid after :meth:`start`."""
        if self._server is None:
            raise RuntimeError("the web server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises :class:`OSError` if the address is taken."""
        if self._server is not None:
            return
        self.stopping.clear()
        self._server = _Server((self.host, self._requested_port), self)
        # A short poll interval makes stop() quick; the loop costs nothing between requests.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        log.info("HTTP endpoint listening on %s (/metrics, /healthz, /)", self.url)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving, end open MJPEG streams and close the socket."""
        self.stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def health(self) -> Health:
        """The current verdict: the ``health`` callable, or :func:`health_from_cameras`; plus ``degraded``."""
        if self._health is not None:
            verdict = self._health()
        elif self.cameras_info is not None:
            verdict = health_from_cameras(self.cameras_info())
        else:
            verdict = Health(ok=False, reason="no health source configured")
        extra = tuple(self.degraded()) if self.degraded is not None else ()
        if extra:
            verdict = dataclasses.replace(verdict, degraded=(*verdict.degraded, *extra))
        return verdict

    def watchers(self, camera: str | None = None) -> int:
        """Open MJPEG streams for ``camera`` (all cameras when ``None``); the pipeline may skip
        annotating frames nobody watches."""
        with self._streams_lock:
            if camera is None:
                return sum(self._streams.values())
            return self._streams.get(camera, 0)

    def _open_stream(self, camera: str) -> bool:
        with self._streams_lock:
            if sum(self._streams.values()) >= self.max_streams:
                return False
            self._streams[camera] = self._streams.get(camera, 0) + 1
            return True

    def _close_stream(self, camera: str) -> None:
        with self._streams_lock:
            n = self._streams[camera] - 1
            if n:
                self._streams[camera] = n
            else:
                del self._streams[camera]

    def camera_names(self) -> list[str] | None:
        """Known camera names, or ``None`` when no ``cameras_info`` was given (any name is tried)."""
        if self.cameras_info is None:
            return None
        return [c.name for c in self.cameras_info()]


def _camera_page() -> str:
    return resources.files("edge").joinpath("web_camera.html").read_text(encoding="utf-8")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edge"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.web.request_timeout_s)

    def handle_one_request(self) -> None:
        self.server.request_stage(self.connection, time.monotonic())
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.request_stage(self.connection, None)
        return ok

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # Access logs go to debug level: a scrape every few seconds must not flood the journal.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        web = self.server.web
        path = urlsplit(self.path).path
        host = self.headers.get("Host")
        if host is not None and not host_allowed(host, web.host, web.allowed_hosts):
            log.debug("HTTP: Host %r not allowed", host)
            self.close_connection = True
            self._send(HTTPStatus.FORBIDDEN, b"host not allowed\n", "text/plain")
            return
        try:
            self._route(web, path)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away; nothing to tell anyone
        except Exception:
            # A bug in a supplied callable: loud in the log, a 500 for the client, the daemon lives on.
            log.exception("HTTP %s failed", path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")

    def _route(self, web: WebServer, path: str) -> None:
        if path == "/metrics":
            self._metrics(web)
        elif path == "/healthz":
            verdict = web.health()
            status = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, verdict.to_json(), "application/json")
        elif path in {"/", "/index.html"}:
            self._send(HTTPStatus.OK, _index_html(web).encode(), "text/html; charset=utf-8")
        elif path == "/api/cameras":
            cams = web.cameras_info() if web.cameras_info is not None else []
            body = [{"name": c.name, "state": c.state, "fps": c.fps, "enabled": c.enabled} for c in cams]
            self._send(HTTPStatus.OK, json.dumps(body).encode(), "application/json")
        elif path.startswith("/cameras/"):
            self._camera_route(web, path.removeprefix("/cameras/"))
        else:
            self._not_found()

    def _camera_route(self, web: WebServer, rest: str) -> None:
        name, _, sub = rest.partition("/")
        camera = unquote(name)
        names = web.camera_names()
        if not camera or (names is not None and camera not in names):
            self._not_found()
        elif sub == "":
            page = _camera_page()
            page = page.replace("{{CAMERA_JSON}}", json.dumps(camera).replace("</", "<\\/"))
            page = page.replace("{{CAMERA}}", html.escape(camera))
            page = page.replace("{{OVERLAY_COLOR}}", OVERLAY_COLOR)
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        elif sub == "geometry.json":
            geometry = web.geometry(camera) if web.geometry is not None else None
            if geometry is None:
                geometry = {"lines": [], "zones": []}
            self._send(HTTPStatus.OK, json.dumps(geometry).encode(), "application/json")
        elif sub == "snapshot.jpg":
            jpeg = web.jpeg_source(camera) if web.jpeg_source is not None else None
            if jpeg is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg", cache=False)
        elif sub == "stream.mjpg":
            self._stream(web, camera)
        elif sub == "event.jpg" and web.event_snapshot is not None:
            jpeg = web.event_snapshot(camera)
            if jpeg is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no event yet\n", "text/plain")
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg", cache=False)
        else:
            self._not_found()

    def _metrics(self, web: WebServer) -> None:
        if web.registry is None:
            self._not_found()
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._send(HTTPStatus.OK, encoder(web.registry), content_type, cache=False)

    def _stream(self, web: WebServer, camera: str) -> None:
        if web.jpeg_source is None:
            self._not_found()
            return
        if not web._open_stream(camera):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many open streams\n", "text/plain")
            return
        try:
            self.close_connection = True  # the stream ends with the connection
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            last: bytes | None = None
            next_at = time.monotonic()
            while not web.stopping.is_set():
                jpeg = web.jpeg_source(camera)
                if jpeg is not None and jpeg is not last:
                    head = (
                        f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n"
                    ).encode()
                    self.wfile.write(head + jpeg + b"\r\n")
                    last = jpeg
                # Fixed cadence, no catching up after a slow write: a late viewer gets fewer frames,
                # never a burst.
                next_at = max(next_at + web.mjpeg_interval_s, time.monotonic())
                web.stopping.wait(next_at - time.monotonic())
                # Without frames nothing is written, so a failed write never reveals a closed client (a
                # frameless camera held its slot forever): look for the client's FIN instead.
                if self._client_gone():
                    return
        finally:
            web._close_stream(camera)

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _not_found(self) -> None:
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, *, cache: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if not cache:
            self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def _index_html(web: WebServer) -> str:
    cams = web.cameras_info() if web.cameras_info is not None else []
    rows = []
    for c in cams:
        q = quote(c.name, safe="")
        n = html.escape(c.name)
        rows.append(
            f"<tr><td><a href='/cameras/{q}'>{n}</a></td><td class='{html.escape(c.state)}'>"
            f"{html.escape(c.state)}</td><td>{c.fps:.1f}</td><td>{'yes' if c.enabled else 'no'}</td>"
            f"<td><a href='/cameras/{q}/snapshot.jpg'>snapshot</a> "
            f"<a href='/cameras/{q}/stream.mjpg'>stream</a></td></tr>"
        )
    verdict = web.health()
    table = "\n".join(rows) if rows else "<tr><td colspan='5'>no cameras</td></tr>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>edge</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .8em}}.online{{color:#080}}.offline,.stalled{{color:#b00}}</style>
</head><body><h1>edge</h1>
<p>health: <b>{"ok" if verdict.ok else "unhealthy"}</b> {html.escape(verdict.reason)}
 &middot; <a href="/metrics">metrics</a> &middot; <a href="/healthz">healthz</a></p>
<table><tr><th>camera</th><th>state</th><th>fps</th><th>enabled</th><th>view</th></tr>
{table}
</table></body></html>
"""
