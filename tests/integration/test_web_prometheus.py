"""A real Prometheus scrapes edge.web's /metrics for >= 30 s and computes a positive frame rate.

The frames counter is driven by a background thread standing in for the pipeline; the full daemon gets
the same check (with the same helper) in the `edge run` tests.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from helpers.paths import REPO_ROOT, require_tool
from helpers.prometheus import Prometheus
from prometheus_client import CollectorRegistry

from edge.metrics import Metrics
from edge.web import CameraInfo, WebServer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

SCRAPE_FOR_S = 30.0  # issue 8: Prometheus scrapes edge for at least 30 s
DASHBOARD = REPO_ROOT / "config" / "grafana" / "edge-dashboard.json"
# What Grafana would put in for the dashboard's variables.
GRAFANA_VARIABLES = {"$camera": ".*", "$__rate_interval": "30s"}


def panel_queries(node: Any) -> list[str]:
    """The ``expr`` of every panel target of the Grafana dashboard."""
    if isinstance(node, dict):
        return [node["expr"]] if isinstance(node.get("expr"), str) else panel_queries(list(node.values()))
    if isinstance(node, list):
        return [q for item in node for q in panel_queries(item)]
    return []


def test_prometheus_scrapes_metrics_for_30_s_and_sees_frames_flow(tmp_path: Path) -> None:
    binary = require_tool("prometheus")
    metrics = Metrics(CollectorRegistry())
    server = WebServer(
        "127.0.0.1",
        0,
        registry=metrics.registry,
        cameras_info=lambda: [CameraInfo("cam1", "online", 50.0)],
    )
    stop = threading.Event()
    frames = [0]

    def pipeline() -> None:  # about 50 processed frames per second
        while not stop.wait(0.02):
            metrics.frames_processed.labels(camera="cam1").inc()
            frames[0] += 1

    worker = threading.Thread(target=pipeline, name="test-frames", daemon=True)
    server.start()
    worker.start()
    try:
        with Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{server.port}"], binary=binary) as prom:
            prom.wait_for_up()
            first_scrape = time.monotonic()
            frames_at_first = frames[0]
            time.sleep(SCRAPE_FOR_S + 1.0)
            local_rate = (frames[0] - frames_at_first) / (time.monotonic() - first_scrape)

            assert prom.query_value('up{job="edge"}') == 1.0
            # >= 30 scrapes at 1 s, and every one of them succeeded
            scrapes = prom.query_value('count_over_time(up{job="edge"}[40s])')
            assert scrapes is not None
            assert scrapes >= SCRAPE_FOR_S
            assert prom.query_value('min_over_time(up{job="edge"}[40s])') == 1.0
            rate = prom.query_value('rate(edge_frames_processed_total{job="edge",camera="cam1"}[30s])')
            assert rate is not None
            assert rate > 0.0
            # Prometheus' rate agrees with what the worker really did (loosely: the box is shared).
            assert 0.5 * local_rate < rate < 2.0 * local_rate, (rate, local_rate)
            health = [t["health"] for t in prom.active_targets()]
            assert health == ["up"]

            # Every dashboard query is valid PromQL for this Prometheus (an invalid one raises).
            queries = panel_queries(json.loads(DASHBOARD.read_text()))
            assert queries
            for q in queries:
                for var, value in GRAFANA_VARIABLES.items():
                    q = q.replace(var, value)  # noqa: PLW2901
                prom.query(q)
            fps = prom.query('sum by (camera) (rate(edge_frames_processed_total{camera=~".*"}[30s]))')
            assert [r["metric"] for r in fps] == [{"camera": "cam1"}]
    finally:
        stop.set()
        worker.join()
        server.stop()
