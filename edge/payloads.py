"""The retained state payloads one camera's pipeline hands to its sinks (and MQTT publishes as JSON).

Typed here, apart from both producer (:mod:`edge.pipeline`) and consumers (:mod:`edge.publisher`,
:mod:`edge.sinks`), so neither imports the other.
"""

from __future__ import annotations

from typing import TypedDict

# A counting line: per direction, crossings by class name plus ``total``, e.g.
# ``{"in": {"person": 3, "total": 3}, "out": {"total": 0}}``. Functional syntax: ``in`` is a keyword.
LineState = TypedDict("LineState", {"in": dict[str, int], "out": dict[str, int]})


class ZoneState(TypedDict):
    """A zone: tracks inside now by class name (classes with nobody inside left out), plus ``total``."""

    occupancy: dict[str, int]
