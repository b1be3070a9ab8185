"""MQTT publisher: events through the durable outbox, retained state, availability, Home Assistant discovery.

Topic names are :mod:`edge.topics`' (``docs/mqtt.md``); TLS, the paho client and retained state are in
:mod:`edge.mqtt_client`; discovery payloads in :mod:`edge.discovery`; the retry policy is
:class:`edge.backoff.Backoff`, shared with capture.

Delivery: :meth:`Publisher.publish_event` appends to the :class:`~edge.outbox.Outbox` and wakes the network
thread, which sends pending rows strictly in outbox order with at most ``max_inflight`` unacknowledged; a
row leaves the outbox only when its PUBACK arrives. After a disconnect, the next connection restarts from the
oldest pending row, so new events never overtake replayed ones and per-camera ``seq`` order is kept.
Delivery is at-least-once: a PUBACK lost with the connection means the event is sent again, and consumers
deduplicate on ``event_id``.

Threading: paho-mqtt runs in one named thread of its own (``edge-mqtt``) driven by ``select`` on the
client socket and a wake-up socket pair, so every paho call happens on that thread. ``publish_event`` and
the ``set_*`` methods run on the pipeline thread (and the loop): they only write to SQLite or memory (tens
of microseconds) and poke the wake-up socket. Commands from the broker (line reset) are handed to the loop
with ``call_soon_threadsafe``. A fresh paho client is built for each connection attempt so that no hidden
paho queue survives a disconnect: the outbox is the only source of truth for what still has to be sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import select
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from pydantic import SecretStr

from edge.backoff import Backoff
from edge.clock import Clock, SystemClock
from edge.discovery import (
    AVAILABLE,
    EMPTY_ZONE_STATE,
    NOT_AVAILABLE,
    CameraSpec,
    DiscoveryLedger,
    discovery_configs,
)
from edge.mqtt_client import MqttVersion, RetainedState, TlsSettings, Waker, new_client
from edge.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from edge.config import MqttConfig
    from edge.metrics import Metrics
    from edge.outbox import Outbox
    from edge.payloads import LineState, ZoneState

__all__ = ["MqttVersion", "Publisher", "Topics"]  # Topics re-exported: its home is edge.topics

log = logging.getLogger(__name__)

# MqttConfig fields passed to the constructor unchanged (the TLS paths become Path objects).
_CONFIG_FIELDS = {
    "host",
    "port",
    "username",
    "password",
    "tls_insecure",
    "protocol",
    "client_id",
    "keepalive",
}
_CONFIG_FIELDS |= {"topic_prefix", "qos", "ha_discovery", "ha_prefix"}

# How often the network thread checkpoints the outbox WAL, so that commits on the event loop never have to.
_CHECKPOINT_INTERVAL_S = 1.0

# -- publisher ------------------------------------------------------------------------------------------


class _Connection:
    """Per-connection state; lives and dies with one paho client, touched only by the network thread."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.connack: bool | None = None  # None: waiting, True: accepted, False: refused
        self.refusal = ""
        self.inflight: dict[int, tuple[int, str]] = {}  # mid -> (outbox row id, camera)
        self.cursor = 0  # highest outbox row id handed to this connection
        self.subscribed = False
        self.offline_mid: int | None = None
        self.offline_acked = False


class Publisher:
    """Publishes events and state of one node to an MQTT broker.

    Args:
        node: this daemon's name, a topic level (``edge/<node>/...``).
        host, port: the broker.
        username, password: credentials; ``password`` may be a pydantic ``SecretStr`` and is never logged.
        tls, tls_ca, tls_cert, tls_key, tls_insecure: see :class:`~edge.mqtt_client.TlsSettings`.
        protocol: ``"3.1.1"`` (default, widest broker support) or ``"5"``.
        client_id: MQTT client id; default ``edge-<node>``. Two nodes with one id kick each other off.
        keepalive: seconds between pings. Lower detects a dead link (and triggers the broker's last will)
            sooner at the cost of more traffic; the broker declares us dead after 1.5x this.
        topic_prefix: first topic level(s).
        qos: QoS of events. 1 (default) is at-least-once with the outbox; 0 drops the PUBACK and an event
            counts as delivered once written to the socket.
        outbox: where events wait for their PUBACK.
        ha_discovery, ha_prefix: publish Home Assistant discovery configs under ``ha_prefix``.
        max_inflight: events sent but not yet acknowledged. More hides broker latency on slow links but
            means more duplicates after a reconnect; 20 is paho's default and what brokers commonly allow
            (MQTT 5 receive maximum).
        reconnect_base, reconnect_cap, reconnect_reset_after: the shared backoff policy
            (:class:`edge.backoff.Backoff`). A small base recovers quickly from a broker restart; the cap
            bounds how long a recovered broker waits for us; a session that lasted ``reset_after`` seconds
            starts the next retries at the base again, a flapping one keeps climbing.
        connect_timeout: seconds to wait for the TCP/TLS connection and the CONNACK. Longer tolerates slow
            links; shorter notices a silent (firewalled) broker sooner and bounds how long :meth:`stop` can
            wait for a connection attempt in progress.
        on_line_reset: called on the event loop thread with ``(camera, line)`` for each reset command.
        metrics, clock, rng: injected dependencies (rng drives the backoff jitter).
    """

    def __init__(
        self,
        node: str,
        *,
        host: str,
        port: int = 1883,
        username: str | None = None,
        password: str | SecretStr | None = None,
        tls: bool = False,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_insecure: bool = False,
        protocol: MqttVersion = "3.1.1",
        client_id: str | None = None,
        keepalive: int = 30,
        topic_prefix: str = "edge",
        qos: Literal[0, 1] = 1,
        outbox: Outbox,
        ha_discovery: bool = True,
        ha_prefix: str = "homeassistant",
        max_inflight: int = 20,
        reconnect_base: float = 0.5,
        reconnect_cap: float = 30.0,
        reconnect_reset_after: float = 30.0,
        connect_timeout: float = 5.0,
        on_line_reset: Callable[[str, str], None] | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol must be '3.1.1' or '5', not {protocol!r}")
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.topics = Topics(topic_prefix, node)
        # What this node declared to Home Assistant, so removed entities are cleared (reload and restart).
        self._ha = DiscoveryLedger(self.topics, ha_prefix)
        self._zone_topics: dict[str, None] = {}  # republished empty on a clean stop
        self.node = node
        self.host = host
        self.port = port
        self.username = username
        self._password = password.get_secret_value() if isinstance(password, SecretStr) else password
        self.protocol: MqttVersion = protocol
        self.client_id = client_id or f"edge-{node}"
        self.keepalive = keepalive
        self.qos = qos
        self.outbox = outbox
        outbox.on_commit = self._wake  # rows of a batch become readable only at its end
        self.ha_discovery = ha_discovery
        self.ha_prefix = ha_prefix
        self.max_inflight = max_inflight
        self.connect_timeout = connect_timeout
        self.on_line_reset = on_line_reset
        self._metrics = metrics
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._backoff = Backoff(
            reconnect_base, reconnect_cap, reconnect_reset_after, clock=self._clock, rng=rng
        )
        self._ssl_context = TlsSettings(tls, tls_ca, tls_cert, tls_key, tls_insecure).context()

        self._retained = RetainedState()

        # The wake-up pair is made in start(): a Publisher that never starts holds no file descriptors.
        self._waker = Waker()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None
        self._crash: BaseException | None = None
        self._next_checkpoint = float("-inf")
        self._connected = False
        self._log_state = ""
        self.connect_attempts = 0
        """Connection attempts so far (for tests and diagnostics)."""
        self._set_connected(False)

    @classmethod
    def from_config(
        cls,
        node: str,
        cfg: MqttConfig,
        *,
        outbox: Outbox,
        on_line_reset: Callable[[str, str], None] | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> Publisher:
        """The publisher an ``mqtt`` config section describes (its field names are the constructor's)."""
        same = cfg.model_dump(include=_CONFIG_FIELDS)
        paths: dict[str, Any] = {
            k: Path(v) for k in ("tls_ca", "tls_cert", "tls_key") if (v := getattr(cfg, k))
        }
        return cls(
            node, **same, **paths, outbox=outbox, on_line_reset=on_line_reset, metrics=metrics, clock=clock
        )

    # -- public API (event loop thread) ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a session with the broker is established (CONNACK accepted)."""
        return self._connected

    async def start(self) -> None:
        """Start the network thread; returns at once (events queue in the outbox until connected)."""
        if self._thread is not None:
            raise RuntimeError("Publisher.start() called twice")
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._waker.open()
        self._thread = threading.Thread(target=self._thread_main, name="edge-mqtt", daemon=True)
        self._thread.start()

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Flush the outbox for at most ``flush_timeout`` s, publish ``offline``, disconnect, join the thread.

        Events still pending after the bound stay in the outbox and are sent by the next run.
        """
        if self._thread is None:
            self._waker.close()
            return
        # Nobody is watched any more: a retained occupancy would say otherwise to every later subscriber.
        for topic in list(self._zone_topics):
            self._set_retained(topic, _json(EMPTY_ZONE_STATE))
        deadline = self._clock.monotonic() + flush_timeout
        while self.outbox.depth > 0 and self._thread.is_alive():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                log.warning("MQTT stop: %d events left in the outbox for the next run", self.outbox.depth)
                break
            # Polling: the depth changes on the network thread, and 20 ms is finer than any flush bound.
            await asyncio.sleep(min(0.02, remaining))
        self._stopping.set()
        self._wake()
        # The network thread needs at most 2 s to publish "offline" and disconnect, or connect_timeout if it
        # is stuck in a TCP/TLS connect to a silent host; it resolves _done when it ends.
        assert self._done is not None
        await asyncio.wait([self._done], timeout=self.connect_timeout + 2.0)
        if not self._done.done():
            # A daemon thread: it dies with the process; its wake-up sockets are left for it to use.
            log.warning("MQTT network thread did not stop in time; leaving it behind")
            return
        self._thread.join()
        self._waker.close()
        if self._done.exception() is not None and self._crash is not None:  # marks the exception retrieved
            raise self._crash

    async def join(self) -> None:
        """Wait until the network thread ends; re-raises its exception if it crashed (a bug)."""
        if self._done is None:
            raise RuntimeError("Publisher.join() before start()")
        await asyncio.shield(self._done)

    def publish_event(self, camera: str, event_type: str, payload: bytes) -> None:
        """Store an event (JSON bytes carrying ``event_id`` and ``seq``) in the outbox and wake the sender.

        Never blocks on the network; safe from any thread.
        """
        self.outbox.put(self.topics.event(camera, event_type), payload, camera)
        self._wake()

    def set_camera_status(self, camera: str, state: str) -> None:
        """Retained camera state (``connecting``, ``online``, ``stalled``, ``offline``...)."""
        self._set_retained(self.topics.status(camera), state.encode())

    def set_line_state(self, camera: str, line: str, payload: LineState) -> None:
        """Retained line counts, ``{"<direction>": {"<class>": count}, ...}`` plus any extra fields."""
        self._set_retained(self.topics.line_state(camera, line), _json(payload))

    def set_zone_state(self, camera: str, zone: str, payload: ZoneState) -> None:
        """Retained zone occupancy, ``{"occupancy": {"<class>": n}, ...}`` plus any extra fields."""
        topic = self.topics.zone_state(camera, zone)
        self._zone_topics[topic] = None
        self._set_retained(topic, _json(payload))

    def set_snapshot(self, camera: str, jpeg: bytes) -> None:
        """Retained JPEG of the camera's latest event (Home Assistant image entity); safe from any thread."""
        self._set_retained(self.topics.snapshot(camera), jpeg)

    def declare_discovery(self, cameras: Sequence[CameraSpec]) -> None:
        """Publish (retained) Home Assistant discovery configs for these cameras, and an empty config for
        every entity declared before (by this run, or one the broker still holds) that is not any more:
        Home Assistant deletes those. With ``ha_discovery`` off, every earlier config is cleared."""
        configs = discovery_configs(self.topics, cameras, self.ha_prefix) if self.ha_discovery else []
        for topic, payload in self._ha.declare((t, _json(p)) for t, p in configs):
            self._set_retained(topic, payload)

    # -- loop-thread helpers -----------------------------------------------------------------------------

    def _set_retained(self, topic: str, payload: bytes) -> None:
        self._retained.set(topic, payload)
        self._wake()

    def _wake(self) -> None:
        self._waker.wake()

    def _dispatch_reset(self, camera: str, line: str) -> None:
        hook = self.on_line_reset
        if hook is None:
            log.warning("reset command for camera=%s line=%s ignored: no handler", camera, line)
            return
        log.info("reset command for camera=%s line=%s", camera, line)
        hook(camera, line)

    # -- network thread ----------------------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            # A bug: reported loudly, and re-raised by stop() / join() on the loop so the daemon exits.
            log.critical("MQTT network thread crashed", exc_info=True)
            self._crash = exc
            self._set_connected(False)
            self._resolve_done(exc)
            raise
        self._resolve_done(None)

    def _resolve_done(self, exc: BaseException | None) -> None:
        loop, done = self._loop, self._done
        if loop is None or done is None or loop.is_closed():
            return

        def resolve() -> None:
            if not done.done():
                if exc is None:
                    done.set_result(None)
                else:
                    done.set_exception(exc)

        loop.call_soon_threadsafe(resolve)

    def _run(self) -> None:
        where = f"{self.host}:{self.port}"
        self._note_state("connecting", logging.INFO, "MQTT connecting to %s", where)
        while not self._stopping.is_set():
            conn = _Connection(self._new_client())
            conn.client.user_data_set(conn)
            self.connect_attempts += 1
            try:
                conn.client.connect(self.host, self.port, self.keepalive)
            except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS (SSLError is an OSError)
                self._discard(conn)
                what = "TLS handshake failed" if isinstance(exc, ssl.SSLError) else "unreachable"
                msg = "MQTT broker %s %s (%s); retrying with backoff"
                self._note_state(f"{what}:{type(exc).__name__}:{exc}", logging.WARNING, msg, where, what, exc)
                self._sleep(self._backoff.next())
                continue
            self._serve(conn)
            self._discard(conn)
            if self._connected:
                self._set_connected(False)
            if conn.connack is False:
                msg = "MQTT broker %s refused the connection: %s; retrying with backoff"
                self._note_state(f"refused:{conn.refusal}", logging.ERROR, msg, where, conn.refusal)
            elif conn.connack is True and not self._stopping.is_set():
                lost = len(conn.inflight)
                if lost and self._metrics is not None:
                    self._metrics.events_failed.labels(reason="connection_lost").inc(lost)
                msg = "MQTT connection to %s lost (%d events in flight will be resent); reconnecting"
                self._note_state("lost", logging.WARNING, msg, where, lost)
            elif conn.connack is None and not self._stopping.is_set():
                msg = "MQTT broker %s did not accept the session in time; retrying with backoff"
                self._note_state("no-connack", logging.WARNING, msg, where)
            if not self._stopping.is_set():
                self._sleep(self._backoff.next())
        self._note_state("stopped", logging.INFO, "MQTT publisher stopped")

    def _new_client(self) -> mqtt.Client:
        client = new_client(
            self.client_id,
            protocol=self.protocol,
            connect_timeout=self.connect_timeout,
            max_inflight=self.max_inflight,
            will=(self.topics.availability, NOT_AVAILABLE),
            username=self.username,
            password=self._password,
            ssl_context=self._ssl_context,
        )
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    @staticmethod
    def _discard(conn: _Connection) -> None:
        sock = conn.client.socket()
        if sock is not None:
            sock.close()

    def _sleep(self, seconds: float) -> None:
        """Wait, but wake at once on stop; keep checkpointing the outbox while events pile up."""
        deadline = self._clock.monotonic() + seconds
        while not self._stopping.is_set():
            self._maybe_checkpoint()
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, _CHECKPOINT_INTERVAL_S))

    def _maybe_checkpoint(self) -> None:
        now = self._clock.monotonic()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + _CHECKPOINT_INTERVAL_S
            self.outbox.checkpoint()

    def _serve(self, conn: _Connection) -> None:
        """Drive one connection until it ends; returns when the socket is gone or stop completed."""
        client = conn.client
        wake = self._waker.reader
        assert wake is not None  # made by start() before the thread runs
        connack_deadline = self._clock.monotonic() + self.connect_timeout
        stop_deadline: float | None = None
        while True:
            sock = client.socket()
            if sock is None:
                return
            if self._stopping.is_set():
                if conn.connack is not True:
                    return
                if stop_deadline is None:
                    stop_deadline = self._clock.monotonic() + min(self.connect_timeout, 2.0)
                    self._send_retained(client)  # set just before stop (empty zones): ahead of "offline"
                    info = client.publish(self.topics.availability, NOT_AVAILABLE, qos=1, retain=True)
                    conn.offline_mid = info.mid
                if conn.offline_acked or self._clock.monotonic() > stop_deadline:
                    client.disconnect()
                    client.loop_write()
                    return
            # TLS may hold decrypted bytes that select() cannot see.
            pending_tls = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            timeout = 0.0 if pending_tls else (0.05 if stop_deadline is not None else 1.0)
            want = [sock] if client.want_write() else []
            readable, writable, _ = select.select([sock, wake], want, [], timeout)
            if wake in readable:
                self._waker.drain()
            if sock in readable or pending_tls:
                rc = client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return
            if writable and client.socket() is not None:
                rc = client.loop_write()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return
            if client.socket() is None:
                return
            if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            if conn.connack is False:
                return
            if conn.connack is None:
                if self._clock.monotonic() > connack_deadline:
                    return
                continue
            if not conn.subscribed:
                self._session_started(conn)
            if stop_deadline is None:
                self._send_retained(client)
                self._pump(conn)
                self._maybe_checkpoint()

    def _session_started(self, conn: _Connection) -> None:
        client = conn.client
        conn.subscribed = True
        self._backoff.online()  # the next failure starts at the base again once this lasted reset_after
        self._set_connected(True)
        self._note_state("connected", logging.INFO, "MQTT connected to %s:%d", self.host, self.port)
        client.publish(self.topics.availability, AVAILABLE, qos=1, retain=True)
        client.subscribe(self.topics.reset_filter, qos=1)
        client.subscribe(self._ha.filter, qos=1)  # our retained discovery configs come back: see _on_message
        # The broker may have lost retained messages (restart without persistence): send them all again.
        self._retained.resend_all()

    def _send_retained(self, client: mqtt.Client) -> None:
        for topic, payload in self._retained.take():
            # QoS 1 without outbox tracking: the latest value is re-sent on every (re)connect anyway.
            client.publish(topic, payload, qos=1, retain=True)

    def _pump(self, conn: _Connection) -> None:
        """Hand pending outbox rows to paho in order, keeping at most max_inflight unacknowledged."""
        room = self.max_inflight - len(conn.inflight)
        if room <= 0 or conn.cursor >= self.outbox.last_id:
            return
        for row in self.outbox.pending(conn.cursor, room):
            info = conn.client.publish(row.topic, row.payload, qos=self.qos, retain=False)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # Connection gone mid-batch; the next connection starts again from the oldest pending row.
                return
            conn.cursor = row.id
            if self.qos == 0:
                # paho reports QoS 0 as published once written; count it delivered now.
                self._acked(row.id, row.camera, failure=None)
            else:
                conn.inflight[info.mid] = (row.id, row.camera)

    # -- paho callbacks (network thread, inside loop_read) ----------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, conn: _Connection, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            conn.connack = False
            conn.refusal = str(reason)
            if reason.value in (4, 5, 0x86, 0x87):  # bad user name or password / not authorized
                conn.refusal += " (check the MQTT username and password)"
        else:
            conn.connack = True

    def _on_publish(self, client: mqtt.Client, conn: _Connection, mid: int, reason: Any, props: Any) -> None:
        if mid == conn.offline_mid:
            conn.offline_acked = True
            return
        entry = conn.inflight.pop(mid, None)
        if entry is None:
            return  # a retained state or availability message
        row_id, camera = entry
        self._acked(row_id, camera, failure=str(reason) if reason.is_failure else None)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._ha.owns(message.topic):
            # A config an earlier run declared: cleared if the current config no longer has that entity.
            if message.retain and self._ha.seen(message.topic, bytes(message.payload)):
                log.info("removing Home Assistant entity %s: no longer in the config", message.topic)
                self._set_retained(message.topic, b"")
            return
        if message.retain:
            # A retained command would zero the counters again at every restart; commands must be fresh.
            log.warning(
                "ignoring retained reset command on %s (publish commands without retain)", message.topic
            )
            return
        parsed = self.topics.parse_reset(message.topic)
        if parsed is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._dispatch_reset, *parsed)

    # -- shared state --------------------------------------------------------------------------------------

    def _acked(self, row_id: int, camera: str, failure: str | None) -> None:
        self.outbox.ack(row_id)
        if failure is not None:
            # MQTT 5 broker refused this message (e.g. ACL); retrying would block every later event.
            log.error("MQTT broker rejected an event on camera=%s: %s; dropped", camera, failure)
            if self._metrics is not None:
                self._metrics.outbox_dropped.labels(reason="rejected").inc()
        elif self._metrics is not None:
            self._metrics.events_published.labels(camera=camera).inc()

    def _set_connected(self, value: bool) -> None:
        self._connected = value
        if self._metrics is not None:
            self._metrics.mqtt_connected.set(1.0 if value else 0.0)

    def _note_state(self, state: str, level: int, msg: str, *args: object) -> None:
        """Log once per state change (principle 6); repeats of the same state go to debug."""
        if state == self._log_state:
            log.debug(msg, *args, stacklevel=2)
            return
        self._log_state = state
        log.log(level, msg, *args, stacklevel=2)


def _json(payload: Mapping[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
