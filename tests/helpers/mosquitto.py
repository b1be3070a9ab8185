"""A private, real mosquitto broker for tests, plus a recording MQTT subscriber.

``Mosquitto`` writes its own config file into a work directory and runs ``mosquitto -c <conf>`` on a free
port of 127.0.0.1, so tests can stop, kill and restart it on the *same* port without touching the shared
broker on 1883. Options: persistence (on by default, so persistent sessions and retained messages survive a
stop/start), a password file, TLS with a throwaway CA made by :func:`make_test_ca`, and extra config lines.

Usage::

    with Mosquitto(tmp_path) as broker:
        ...  # broker.host, broker.port
        broker.stop(); broker.start()
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway CA and a server certificate for ``localhost`` / ``127.0.0.1``."""

    ca: Path
    cert: Path
    key: Path


def make_test_ca(directory: Path, openssl: str = "openssl") -> TlsFiles:
    """Create a CA and a server certificate signed by it (EC P-256, valid one day) with ``openssl``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
        "-days",
        "1",
        "-subj",
        "/CN=edge test CA",
    )
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "1", "-extfile", str(ext),
    )  # fmt: skip
    return TlsFiles(ca=ca_crt, cert=crt, key=key)


class Mosquitto:
    """A mosquitto process owned by one test.

    Args:
        workdir: where the config, password file, persistence database and log go.
        port: fixed port; default: a free one, kept across :meth:`stop` / :meth:`start`.
        users: user name -> password; when given, anonymous access is off.
        tls: serve TLS with these files instead of plain TCP.
        persistence: keep sessions and retained messages across a stop (SIGTERM) and start.
        extra: additional config lines (e.g. ``"max_queued_messages 0"``).
        binary: the mosquitto executable.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        persistence: bool = True,
        extra: Iterable[str] = (),
        binary: str = "mosquitto",
    ) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.tls = tls
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} {self.host}"]
        if os.geteuid() == 0:
            # mosquitto drops root privileges to user "mosquitto", which could not read our work directory.
            lines.append(f"user {getpass.getuser()}")
        if users:
            pw = workdir / "passwd"
            pw.write_text("")
            for name, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw), name, password], check=True, capture_output=True
                )
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
        lines += [f"log_dest file {self.log_path}", "log_type all", "connection_messages true", *extra]
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts TCP connections."""
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence database) and wait."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float = 0.0
    """time.monotonic() on arrival."""


@dataclass
class Subscriber:
    """A paho client (in its own loop thread) that records every message it receives.

    ``clean_session=False`` with a fixed ``client_id`` gives a persistent session: QoS 1 messages published
    while it is disconnected (e.g. during a broker restart) are queued by the broker and delivered later.
    """

    host: str
    port: int
    topics: list[str]
    client_id: str = "edge-test-subscriber"
    clean_session: bool = True
    qos: int = 1
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    messages: list[Received] = field(default_factory=list)
    on_receive: Callable[[Received], None] | None = None
    _client: Any = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = 10.0) -> Self:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=self.clean_session
        )
        # Sub-second delays work (paho only does arithmetic on them) though its annotation says int.
        client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls_ca is not None:
            client.tls_set(ca_certs=str(self.tls_ca))

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                # One SUBSCRIBE for all filters: a single SUBACK means every one of them is active.
                c.subscribe([(t, self.qos) for t in self.topics])

        def on_subscribe(c: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
            self._subscribed.set()

        def on_message(c: Any, userdata: Any, msg: Any) -> None:
            rec = Received(msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos), time.monotonic())
            with self._cond:
                self.messages.append(rec)
                self._cond.notify_all()
            if self.on_receive is not None:
                self.on_receive(rec)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(self.host, self.port, keepalive=5)
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(timeout):
            self.stop()
            raise RuntimeError("subscriber did not get a SUBACK")
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5.0)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Wait until ``predicate(messages)`` holds; returns whether it did before ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
