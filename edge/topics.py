"""MQTT topic names: the single source of the layout documented in ``docs/mqtt.md``::

<prefix>/<node>/availability                      retained "online" / "offline" (last will "offline")
<prefix>/<node>/<camera>/status                   retained camera state from capture
<prefix>/<node>/<camera>/events/<type>            QoS 1, not retained, the JSON events
<prefix>/<node>/<camera>/lines/<line>/state       retained current counts
<prefix>/<node>/<camera>/zones/<zone>/state       retained current occupancy
<prefix>/<node>/<camera>/lines/<line>/reset       command: zero that line's counters
<prefix>/<node>/<camera>/snapshot                 retained JPEG of the latest event
"""

from __future__ import annotations

import re

# A topic level must not contain the separator or wildcards (MQTT 3.1.1 section 4.7), and an empty level
# would make the reset subscription ambiguous.
_BAD_LEVEL = re.compile(r"[/+#\x00]")


def _check_level(what: str, value: str) -> str:
    if not value or _BAD_LEVEL.search(value):
        raise ValueError(f"{what} {value!r} cannot be used as an MQTT topic level (empty, '/', '+', '#')")
    return value


class Topics:
    """Topic names; the single source of the layout documented in ``docs/mqtt.md``."""

    def __init__(self, prefix: str, node: str) -> None:
        self.prefix = "/".join(_check_level("topic prefix level", p) for p in prefix.split("/"))
        self.node = _check_level("node name", node)
        self.base = f"{self.prefix}/{self.node}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    def status(self, camera: str) -> str:
        return f"{self._camera(camera)}/status"

    def event(self, camera: str, event_type: str) -> str:
        return f"{self._camera(camera)}/events/{_check_level('event type', event_type)}"

    def line_state(self, camera: str, line: str) -> str:
        return f"{self._camera(camera)}/lines/{_check_level('line name', line)}/state"

    def zone_state(self, camera: str, zone: str) -> str:
        return f"{self._camera(camera)}/zones/{_check_level('zone name', zone)}/state"

    def line_reset(self, camera: str, line: str) -> str:
        return f"{self._camera(camera)}/lines/{_check_level('line name', line)}/reset"

    def snapshot(self, camera: str) -> str:
        """Retained JPEG of the camera's latest event (Home Assistant image entity)."""
        return f"{self._camera(camera)}/snapshot"

    def _camera(self, camera: str) -> str:
        return f"{self.base}/{_check_level('camera name', camera)}"

    @property
    def reset_filter(self) -> str:
        """Subscription matching every line's reset command of this node."""
        return f"{self.base}/+/lines/+/reset"

    def parse_reset(self, topic: str) -> tuple[str, str] | None:
        """``(camera, line)`` if ``topic`` is a reset command of this node, else ``None``."""
        head = f"{self.base}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 4 or parts[1] != "lines" or parts[3] != "reset" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]


# -- backoff --------------------------------------------------------------------------------------------
