"""No password from a source URL or the MQTT section ever reaches a log line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from edge.logs import Redactor, redact_url, setup_logging

URL = "rtsp://admin:S3cr3tPass@10.0.0.5:554/stream1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (URL, "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("open http://u:p%40ss@cam/x failed", "open http://u:***@cam/x failed"),
        ("rtsp://10.0.0.5/stream (no credentials)", "rtsp://10.0.0.5/stream (no credentials)"),
        ("two rtsp://a:b1@h1/ and rtsps://c:d2@h2/", "two rtsp://a:***@h1/ and rtsps://c:***@h2/"),
        # The password runs to the last "@": "@", "/" and ":" inside it are masked too (issue 15, item 9).
        ("rtsp://carol:p@ssW0rdAt@10.0.0.5/s", "rtsp://carol:***@10.0.0.5/s"),
        ("rtsp://carol:a/b:c@d@cam:554/x?y=1 next", "rtsp://carol:***@cam:554/x?y=1 next"),
        ("{'source': 'rtsp://u:p@w/x@h/x'}", "{'source': 'rtsp://u:***@h/x'}"),
        ("rtsp://user@host/x has no password", "rtsp://user@host/x has no password"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    yield stream
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize("json_lines", [False, True])
def test_no_password_in_any_log_line(captured: io.StringIO, json_lines: bool) -> None:
    setup_logging("DEBUG", json_lines=json_lines, secrets=["mqtt-hunter2"], stream=captured)
    log = logging.getLogger("edge.test")
    log.info("camera %s opened", URL)
    log.warning("connect with password mqtt-hunter2 refused")
    def fail() -> None:
        raise ConnectionError(f"cannot open {URL} with mqtt-hunter2")

    try:
        fail()
    except ConnectionError:
        log.exception("source failed")
    text = captured.getvalue()
    assert "S3cr3tPass" not in text
    assert "mqtt-hunter2" not in text
    assert "admin:***@" in text
    if json_lines:
        for line in text.splitlines():
            json.loads(line)


def test_short_secrets_are_not_masked_everywhere() -> None:
    redactor = Redactor(["a"])
    assert redactor("a camera") == "a camera"
