"""A config error, ``--print`` or a log line never shows a secret (issue 15, items 8 and 9).

Each row is one way a secret reached the journal before: the config file, the environment and the
credential file that produce it, and the strings that must not appear in anything edge prints.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import pytest

from edge.__main__ import main
from edge.config_errors import redact_value
from edge.errors import EX_CONFIG
from edge.logs import setup_logging

if TYPE_CHECKING:
    from pathlib import Path

CAM = "cameras:\n  - {name: cam, source: video.mp4}\n"

CASES = [
    pytest.param(
        "mqtt:\n  username: alice-admin\n  password: hunter2-Secret\n  tls_cert: /etc/edge/c.pem\n" + CAM,
        {},
        None,
        ["hunter2-Secret", "alice-admin"],
        id="mqtt-section-error-prints-the-section",
    ),
    pytest.param(
        "mqtt:\n  username: alice-admin\n  tls_cert: /etc/edge/c.pem\n" + CAM,
        {},
        "Cr3dFile-Secret",
        ["Cr3dFile-Secret", "alice-admin"],
        id="password-from-credentials-directory",
    ),
    pytest.param(
        "mqtt:\n  username: alice-admin\n  password: 982451653\n  tls_cert: /etc/edge/c.pem\n" + CAM,
        {},
        None,
        ["982451653", "alice-admin"],
        id="numeric-password",
    ),
    pytest.param(
        "mqtt:\n  password: [ListSecretA, ListSecretB]\n" + CAM,
        {},
        None,
        ["ListSecretA", "ListSecretB"],
        id="list-password",
    ),
    pytest.param(
        "cameras:\n  - rtsp://bob:B0bPa55word@10.0.0.9/stream1\n",
        {},
        None,
        ["B0bPa55word"],
        id="bare-rtsp-camera-string",
    ),
    pytest.param(
        "cameras: {name: cam, source: 'rtsp://carol:p@ssW0rd/At:x@10.0.0.5:554/s'}\n",
        {},
        None,
        ["ssW0rd", "p@ss", "At:x"],
        id="url-password-with-at-slash-colon",
    ),
    pytest.param(
        "mqtt:\n  username: alice-admin\n  tls_cert: /etc/edge/c.pem\n" + CAM,
        {"EDGE_MQTT__PASSWORD": "EnvPa55-Secret"},
        None,
        ["EnvPa55-Secret", "alice-admin"],
        id="password-from-environment",
    ),
    pytest.param(
        "mqtt:\n  password: DupSecret-One\n  password: DupSecret-Two\n" + CAM,
        {},
        None,
        ["DupSecret-One", "DupSecret-Two"],
        id="yaml-duplicate-key-error",
    ),
    pytest.param(
        "mqtt:\n  password: 'Quoted-Secret'\n  port: [1]\n  bogus: : :\n" + CAM,
        {},
        None,
        ["Quoted-Secret"],
        id="yaml-syntax-error",
    ),
]


@pytest.mark.parametrize(("text", "env", "credential", "secrets"), CASES)
def test_config_errors_never_print_a_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    env: dict[str, str],
    credential: str | None,
    secrets: list[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if credential is not None:
        cred_dir = tmp_path / "creds"
        cred_dir.mkdir()
        (cred_dir / "mqtt_password").write_text(credential + "\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred_dir))
    config = tmp_path / "edge.yaml"
    config.write_text(text)
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        code = main(["check-config", str(config)])
    finally:
        logging.getLogger().handlers.clear()
    out = capsys.readouterr()
    printed = out.out + out.err + stream.getvalue()
    assert code == EX_CONFIG, printed
    assert "problem(s) in the configuration" in printed
    for secret in secrets:
        assert secret not in printed, printed


def test_print_masks_url_passwords_whatever_they_contain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(
        "mqtt:\n  username: u\n  password: PrintedPa55\n"
        "cameras:\n  - {name: cam, source: 'rtsp://carol:p@ssW0rd/At:x@10.0.0.5:554/s'}\n"
    )
    assert main(["check-config", "--print", str(config)]) == 0
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "rtsp://carol:***@10.0.0.5:554/s" in printed
    for secret in ("PrintedPa55", "ssW0rd", "p@ss"):
        assert secret not in printed


@pytest.mark.parametrize(
    ("value", "key", "paired", "expected"),
    [
        ("x", "password", False, "***"),
        (12345, "password", False, "***"),
        (["a", "b"], "PASSWORD", False, "***"),
        ("alice", "username", True, "***"),
        ("alice", "username", False, "alice"),
        (
            {"username": "alice", "password": "pw", "port": 1},
            "mqtt",
            False,
            {"username": "***", "password": "***", "port": 1},
        ),
        ("rtsp://u:a@b/c:d@host/x", "source", False, "rtsp://u:***@host/x"),
        ([{"token": 7}], None, False, [{"token": "***"}]),
        (None, "password", False, None),
    ],
)
def test_redact_value(value: object, key: str | None, paired: bool, expected: object) -> None:
    assert redact_value(value, key, [], paired) == expected
