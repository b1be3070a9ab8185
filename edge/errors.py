"""The exception hierarchy for errors a user can cause or an operator must see.

Anything raised as an :class:`EdgeError` is reported as one or more plain lines, never as a traceback;
anything else is a bug and is allowed to crash loudly (systemd restarts the service).
"""

from __future__ import annotations

from dataclasses import dataclass

EX_CONFIG = 78
"""sysexits.h EX_CONFIG: systemd's ``RestartPreventExitStatus=78`` stops a restart loop on bad config."""
EX_SOFTWARE = 70
"""sysexits.h EX_SOFTWARE: an internal error."""
EX_UNAVAILABLE = 69
"""sysexits.h EX_UNAVAILABLE: a required resource (model, source) cannot be used."""


class EdgeError(Exception):
    """Base of every error edge reports to the user as text instead of a traceback."""

    exit_code: int = EX_SOFTWARE


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in a configuration file.

    Attributes:
        path: dotted location, e.g. ``cameras.0.lines.1.points``.
        line: 1-based line in the YAML file, or ``None`` when it did not come from a file.
        value: the offending value as written (``None`` when the key is missing).
        reason: what is wrong, in words.
    """

    path: str
    line: int | None
    value: object
    reason: str

    def format(self, source: str = "") -> str:
        where = f"{source}:{self.line}" if self.line is not None else (source or "<config>")
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.path or '<root>'}: {self.reason}{shown}"


class ConfigError(EdgeError):
    """The configuration is invalid; carries one :class:`ConfigProblem` per mistake."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[ConfigProblem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.format(source) for p in problems))

    def lines(self) -> list[str]:
        return [p.format(self.source) for p in self.problems]


class SourceError(EdgeError):
    """A video source cannot be opened or read."""

    exit_code = EX_UNAVAILABLE


class ModelError(EdgeError):
    """A model file is missing, corrupt, or of a shape edge does not understand."""

    exit_code = EX_UNAVAILABLE


class PublishError(EdgeError):
    """Events cannot be published (e.g. bad broker credentials)."""

    exit_code = EX_UNAVAILABLE
