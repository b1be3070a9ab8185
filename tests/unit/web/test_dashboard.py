"""The Grafana dashboard only queries metrics edge exports, and every metric issue 8 names exists.

PromQL is not parsed here (the Prometheus integration test sends every dashboard query to a real
Prometheus); this test pulls the metric names out of each expression and checks them against a fresh
:class:`edge.metrics.Metrics` registry, in the names Prometheus sees (``_total``, ``_bucket``...).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
from helpers.paths import REPO_ROOT, require_tool
from prometheus_client import CollectorRegistry

from edge.metrics import Metrics

DASHBOARD = REPO_ROOT / "config" / "grafana" / "edge-dashboard.json"
PROMETHEUS_YML = REPO_ROOT / "config" / "prometheus.yml"

# Sample names each metric type exposes, by suffix.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count", "count_over_time", "count_values", "delta", "deriv", "floor", "group",
    "histogram_quantile", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time",
    "max", "max_over_time", "min", "min_over_time", "quantile", "quantile_over_time", "rate", "resets",
    "round", "scalar", "sort", "sort_desc", "stddev", "sum", "sum_over_time", "time", "timestamp", "topk",
    "bottomk", "vector",
}  # fmt: skip
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
}  # fmt: skip


def exported_names() -> set[str]:
    """Every sample name a fresh Metrics registry can expose (labelled metrics have no samples yet)."""
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metric_names(promql: str) -> set[str]:
    """Metric names used in one PromQL expression (or a Grafana ``label_values(metric, label)`` query)."""
    if m := re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)\s*", promql):
        return {m.group(1)}
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)  # string literals (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        word, call = m.group(1), m.group(2)
        if call:
            assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word!r} in {promql!r}"
        elif word not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def dashboard_queries(node: Any) -> list[str]:
    """Every PromQL string in the dashboard: panel targets' ``expr`` and templating queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            elif key == "query" and node.get("type") == "query":
                found.append(value["query"] if isinstance(value, dict) else value)
            else:
                found.extend(dashboard_queries(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(dashboard_queries(item))
    return found


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        ('sum by (camera) (rate(edge_frames_processed_total{camera=~"$camera"}[$__rate_interval]))',
         {"edge_frames_processed_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(edge_inference_seconds_bucket[5m])))",
         {"edge_inference_seconds_bucket"}),
        ("sum(rate(a_sum[1m])) / sum(rate(a_count[1m]))", {"a_sum", "a_count"}),
        ('edge_camera_state{state="online"} == 1', {"edge_camera_state"}),
        ("label_values(edge_frames_processed_total, camera)", {"edge_frames_processed_total"}),
        ('max(up{job="edge"}) by (instance) or vector(0)', {"up"}),
    ],
)  # fmt: skip
def test_metric_names_are_extracted(promql: str, expected: set[str]) -> None:
    assert metric_names(promql) == expected


def test_every_dashboard_query_refers_to_an_existing_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 20
    exported = exported_names()
    used = set()
    for q in queries:
        names = metric_names(q)
        assert names, f"no metric in {q!r}"
        unknown = names - exported
        assert not unknown, f"{q!r} uses metrics edge does not export: {sorted(unknown)}"
        used |= names
    # The panels the issue asks for are there.
    for needed in [
        "edge_frames_processed_total",  # per camera fps
        "edge_frames_dropped_total",  # drops
        "edge_capture_to_publish_seconds_bucket",  # latency p95
        "edge_line_crossings_total",  # crossings per hour
        "edge_zone_occupancy",  # occupancy
        "edge_outbox_depth",  # outbox depth
        "edge_mqtt_connected",  # MQTT state
        "edge_camera_state",  # camera state
    ]:
        assert needed in used, needed
    p95 = "histogram_quantile(0.95"
    assert any(p95 in q and "edge_capture_to_publish_seconds_bucket" in q for q in queries)
    assert any("increase(edge_line_crossings_total" in q and "[1h]" in q for q in queries)
    assert any("rate(edge_frames_processed_total" in q for q in queries)


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "camera"} <= variables
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


# Metrics named or described in issue 8, with the labels it asks for (label names, never a track id).
ISSUE_METRICS = {
    "edge_frames_captured_total": {"camera"},
    "edge_frames_processed_total": {"camera"},
    "edge_frames_dropped_total": {"camera", "reason"},
    "edge_capture_reconnects_total": {"camera"},
    "edge_camera_state": {"camera", "state"},
    "edge_frame_age_seconds_bucket": {"camera"},
    "edge_capture_to_publish_seconds_bucket": {"camera"},
    "edge_inference_seconds_bucket": set(),
    "edge_inference_batch_size_bucket": set(),
    "edge_tracker_seconds_bucket": {"camera"},
    "edge_active_tracks": {"camera"},
    "edge_line_crossings_total": {"camera", "line", "direction", "class_name"},
    "edge_zone_occupancy": {"camera", "zone"},
    "edge_events_published_total": set(),
    "edge_events_failed_total": set(),
    "edge_outbox_depth": set(),
    "edge_outbox_dropped_total": set(),
    "edge_mqtt_connected": set(),
    "edge_build_info": set(),
}


def test_every_metric_named_in_the_issue_exists_with_bounded_labels() -> None:
    exported = exported_names()
    labels: dict[str, set[str]] = {}
    for family in Metrics(CollectorRegistry()).registry.collect():
        for suffix in SUFFIXES[family.type]:
            labels[family.name + suffix] = set()
    metrics = Metrics(CollectorRegistry())
    for collector in vars(metrics).values():
        names = getattr(collector, "_labelnames", None)
        if names is None:
            continue
        for family in collector.describe():
            for suffix in SUFFIXES[family.type]:
                labels[family.name + suffix] = set(names)
    for name, required in ISSUE_METRICS.items():
        assert name in exported, name
        assert required <= labels[name], (name, labels[name])
    forbidden = {"track", "track_id", "id", "object_id"}
    for name, names in labels.items():
        assert not names & forbidden, f"{name} has an unbounded label: {names & forbidden}"


def test_metric_units_are_in_their_names() -> None:
    for family in Metrics(CollectorRegistry()).registry.collect():
        if family.type == "histogram" and family.name != "edge_inference_batch_size":
            assert family.name.endswith("_seconds"), family.name
        assert family.name.startswith("edge_"), family.name


def test_prometheus_example_config_is_valid() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "127.0.0.1:9108" in PROMETHEUS_YML.read_text()
