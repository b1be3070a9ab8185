"""A private, real Prometheus server for tests, scraping given targets, with a query helper.

``Prometheus`` writes a scrape config into a work directory and runs the ``prometheus`` binary (Debian
package ``prometheus``) on a free port of 127.0.0.1 with its own TSDB directory, so it never touches a
system instance. The scrape interval is short (1 s by default) so a test sees data within seconds.

Usage::

    with Prometheus(tmp_path, targets=["127.0.0.1:9108"]) as prom:
        prom.wait_for_up()                      # first successful scrape
        ...
        prom.query_value('up{job="edge"}')      # -> 1.0
        prom.query('rate(edge_frames_processed_total[30s])')  # -> [{"metric": {...}, "value": [ts, "12.3"]}]

A test that needs it calls ``require_tool("prometheus")`` first (fails under CI, skips elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import TracebackType


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller retries if someone takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PrometheusError(RuntimeError):
    """Prometheus did not start, or its HTTP API answered with an error."""


class Prometheus:
    """A Prometheus process of its own.

    ``workdir``: where the config, the TSDB and the log go (a test's ``tmp_path``).
    ``targets``: ``host:port`` strings scraped as job ``job`` at ``metrics_path``.
    ``scrape_interval_s``: how often each target is scraped; shorter gives ``rate()`` more samples in a
    short test at the cost of CPU. ``binary``: the prometheus executable.
    """

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str],
        *,
        job: str = "edge",
        metrics_path: str = "/metrics",
        scrape_interval_s: float = 1.0,
        binary: str = "prometheus",
        start_timeout_s: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.job = job
        self.metrics_path = metrics_path
        self.scrape_interval_s = scrape_interval_s
        self.binary = binary
        self.start_timeout_s = start_timeout_s
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_text(self) -> str:
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        return json.dumps(  # JSON is YAML; no YAML writer needed
            {
                "global": {
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "evaluation_interval": interval,
                },
                "scrape_configs": [
                    {
                        "job_name": self.job,
                        "metrics_path": self.metrics_path,
                        "static_configs": [{"targets": self.targets}],
                    }
                ],
            },
            indent=2,
        )

    def start(self) -> None:
        """Start Prometheus and wait until it reports ready; retries once on a lost port race."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        for attempt in range(3):
            self.port = free_port(self.host)
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config_path}",
                        f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                        f"--web.listen-address={self.host}:{self.port}",
                        "--storage.tsdb.retention.time=1h",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_ready():
                return
            self.stop()
            if attempt == 2:
                break
        raise PrometheusError(f"prometheus did not become ready; log:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r,  # noqa: S310
            ):
                if r.status == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Terminate Prometheus (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # HTTP API

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raises :class:`PrometheusError` on an error."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - our own local server
                body = json.load(r)
        except urllib.error.HTTPError as e:
            with e:
                raise PrometheusError(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (``[{"metric": {...}, "value": [ts, "v"]}, ...]``)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_value(self, promql: str) -> float | None:
        """The single value of an instant query, ``None`` when the result is empty.

        Raises :class:`PrometheusError` when the query returns more than one series.
        """
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql!r} returned {len(result)} series, expected one: {result}")
        return float(result[0]["value"][1])

    def active_targets(self) -> list[dict[str, Any]]:
        """``/api/v1/targets`` active targets (``health``, ``lastError``, ``scrapeUrl``...)."""
        targets: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return targets

    def wait_for(
        self, promql: str, predicate: Callable[[float | None], bool], timeout_s: float = 30.0
    ) -> float | None:
        """Poll ``query_value(promql)`` until ``predicate`` holds; raises :class:`TimeoutError` with the
        targets' state otherwise."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.query_value(promql)
            if predicate(value):
                return value
            time.sleep(min(0.5, self.scrape_interval_s / 2))
        raise TimeoutError(
            f"{promql!r} = {value} did not satisfy the condition in {timeout_s} s; "
            f"targets: {self.active_targets()}; log:\n{self.log_tail()}"
        )

    def wait_for_up(self, timeout_s: float = 30.0) -> None:
        """Wait until every target of the job has been scraped successfully once."""
        want = len(self.targets)
        self.wait_for(f'count(up{{job="{self.job}"}} == 1)', lambda v: v is not None and v >= want, timeout_s)
