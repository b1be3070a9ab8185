"""The MQTT connection's parts below the publisher: TLS settings, a configured paho client, retained state.

Kept apart so :mod:`edge.publisher` holds only the delivery logic (outbox order, acknowledgements,
reconnects).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import PublishError

MqttVersion = Literal["3.1.1", "5"]

log = logging.getLogger(__name__)


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when the TLS handshake fails.

    paho-mqtt 2.2's ``_ssl_wrap_socket`` leaves the socket open when ``do_handshake()`` raises (e.g. an
    untrusted certificate), leaking one descriptor per reconnect attempt until garbage collection.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How to reach the broker over TLS.

    Attributes:
        enabled: TLS with the system CAs even without ``ca`` (giving ``ca`` or ``cert`` turns TLS on too).
        ca, cert, key: CA bundle, client certificate and key (PEM paths).
        insecure: skip the broker host name check (the certificate chain is still verified). Only for
            brokers addressed by a name their certificate lacks; it allows man-in-the-middle by anyone
            with a certificate from the same CA.
    """

    enabled: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False

    @property
    def on(self) -> bool:
        return self.enabled or self.ca is not None or self.cert is not None

    def context(self) -> ssl.SSLContext | None:
        """The client context, or ``None`` without TLS; :class:`PublishError` when files cannot be used."""
        if not self.on:
            if self.insecure:
                raise ValueError("tls_insecure needs TLS (tls=True or tls_ca)")
            return None
        try:
            ctx = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(self.ca) if self.ca else None
            )
            if self.cert is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key) if self.key is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(f"MQTT TLS setup failed: {exc}") from exc
        ctx.sslsocket_class = _ClosingSSLSocket
        if self.insecure:
            log.warning(
                "MQTT tls_insecure is on: the broker's host name is not checked against its certificate"
            )
            ctx.check_hostname = False
        return ctx


def new_client(
    client_id: str,
    *,
    protocol: MqttVersion,
    connect_timeout: float,
    max_inflight: int,
    will: tuple[str, str],
    username: str | None,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
) -> mqtt.Client:
    """A paho client for one connection attempt (the caller sets its callbacks and user data)."""
    v5 = protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        # The outbox, not the broker session, makes events durable; a clean session also drops any
        # stale reset command queued while we were away.
        clean_session=None if v5 else True,
    )
    client.connect_timeout = connect_timeout
    client.max_inflight_messages_set(max_inflight)
    client.will_set(will[0], will[1], qos=1, retain=True)
    if username is not None:
        client.username_pw_set(username, password)
    if ssl_context is not None:
        client.tls_set_context(ssl_context)
    return client


class RetainedState:
    """The latest payload of every retained topic, and which of them still have to be sent.

    Written from any thread (the loop, the pipeline thread), read by the network thread; one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, bytes] = {}
        self._dirty: dict[str, None] = {}  # ordered set of topics to (re)send

    def set(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._values[topic] = payload
            self._dirty[topic] = None

    def resend_all(self) -> None:
        """A new session: the broker may have lost everything, so every topic is sent again."""
        with self._lock:
            self._dirty = dict.fromkeys(self._values)

    def take(self) -> list[tuple[str, bytes]]:
        """The topics to send now, with their latest payloads (each once, in the order first set)."""
        with self._lock:
            batch = [(t, self._values[t]) for t in self._dirty]
            self._dirty.clear()
        return batch


class Waker:
    """A non-blocking socket pair that wakes the network thread's ``select`` from any thread.

    Made on :meth:`open` (a publisher that never starts holds no file descriptors).
    """

    def __init__(self) -> None:
        self.reader: socket.socket | None = None
        self._writer: socket.socket | None = None

    def open(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        w = self._writer
        if w is None:
            return  # not started: the event waits in the outbox
        # Buffer full: a wake-up is already pending. Closed: we are stopped; the outbox keeps the event.
        with contextlib.suppress(BlockingIOError, OSError):
            w.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError, AttributeError):
            while self.reader.recv(4096):  # type: ignore[union-attr]
                pass

    def close(self) -> None:
        for s in (self.reader, self._writer):
            if s is not None:
                s.close()
