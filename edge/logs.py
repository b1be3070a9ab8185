"""Logging for operators: journald-friendly lines, optional JSON, credentials never printed.

Redaction happens on the final formatted text (message, arguments, exception and stack trace alike), so a
password inside an exception message raised deep in OpenCV or paho is masked as well.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import TextIO

# scheme://user:password@host -> scheme://user:***@host (user kept: it helps operators, it is not secret).
# The password runs to the LAST "@" of the URL, so one containing "@", "/" or ":" is masked whole
# (``rtsp://carol:p@ss/w:rd@cam`` -> ``rtsp://carol:***@cam``); a URL ends at whitespace or a quote.
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*):(?P<secret>[^\s'\"]*)@(?P<rest>[^@\s'\"]*)(?=[\s'\"]|$)"
)
MASK = "***"


def redact_url(text: str) -> str:
    """Mask the password of every ``scheme://user:password@`` in ``text``, whatever the password holds."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('prefix')}:{MASK}@{m.group('rest')}", text)


class Redactor:
    """Masks URL credentials and any explicitly registered secret strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another one is masked whole. Very short strings are
        # ignored: masking every "a" would destroy the log without protecting anything.
        merged = {*self._secrets, *(s for s in secrets if s and len(s) >= 3)}
        self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        text = redact_url(text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFormatter(logging.Formatter):
    """A text formatter whose whole output passes through a :class:`Redactor`."""

    def __init__(self, redactor: Redactor, *, timestamps: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__("%(asctime)s " + fmt if timestamps else fmt)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and exc when there is one."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(doc, ensure_ascii=False))


def under_journald() -> bool:
    """True when stderr goes to the journal, which adds its own timestamps."""
    return bool(os.environ.get("JOURNAL_STREAM"))


def setup_logging(
    level: str = "INFO",
    *,
    json_lines: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Configure the root logger once for the process; returns the redactor so callers can add secrets."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter: logging.Formatter
    if json_lines:
        formatter = JsonFormatter(redactor)
    else:
        formatter = RedactingFormatter(redactor, timestamps=not under_journald())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter at INFO is noise in the journal.
    for noisy in ("numba", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
