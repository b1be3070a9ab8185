"""The daemon's configuration: one frozen pydantic tree from YAML plus ``EDGE_*`` environment overrides.

Loading reports every mistake at once, each as dotted path + YAML line + offending value + reason (see
:class:`edge.errors.ConfigError`); the CLI prints those lines and exits 78 (EX_CONFIG), never a traceback.

Sources, highest priority first:
1. environment variables ``EDGE_<FIELD>``, nested with ``__`` (``EDGE_MQTT__HOST=broker``);
2. the YAML file;
3. for the MQTT password only: the file ``mqtt_password`` in ``$CREDENTIALS_DIRECTORY`` (systemd
   ``LoadCredential=``), used when neither of the above sets it;
4. the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge.config_errors import locate as _locate
from edge.config_errors import problems_from_validation as _problems_from_validation
from edge.config_errors import read_yaml as _read_yaml
from edge.config_errors import to_plain as _to_plain
from edge.errors import ConfigError, ConfigProblem
from edge.types import ANCHORS

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO class names in model order; used when a model's own names cannot be read."""

DEFAULT_STATE_DIR = Path("/var/lib/edge")
CREDENTIAL_MQTT_PASSWORD = "mqtt_password"  # noqa: S105 - a file name, not a password

Anchor = Literal["bottom_center", "center", "top_center", "bottom_left", "bottom_right"]
assert set(ANCHORS) == set(Anchor.__args__)  # type: ignore[attr-defined]  # keep both lists in step

# Names end up in MQTT topics, metric labels and file names: keep them to a safe alphabet.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[float, float]
ClassRef = int | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LineLabels(_Strict):
    """Display labels of the two directions (events always also carry ``direction: in|out``)."""

    in_: str = Field("in", alias="in", min_length=1)
    out: str = Field("out", min_length=1)


class LineConfig(_Strict):
    """A counting line from A to B.

    ``in`` is a crossing towards the right-hand side of A->B in image coordinates (y down): for a line from
    left to right, moving downwards is ``in``.
    """

    name: Name
    points: tuple[Point, Point] = Field(description="A and B, in the camera's `coordinates` unit")
    labels: LineLabels = Field(default_factory=LineLabels)
    anchor: Anchor = "bottom_center"
    classes: tuple[ClassRef, ...] | None = Field(
        None, description="class names or ids that count here; null = every class the model reports"
    )
    extend: bool = Field(False, description="treat AB as an infinite line instead of a segment")
    min_frames: int = Field(
        3,
        ge=1,
        description="frames at 30 fps the anchor must stay on the new side (the same time at any fps); "
        "more = less flicker, later count",
    )
    min_distance: float = Field(
        0.0, ge=0.0, description="pixels the anchor must be away from the line before a crossing commits"
    )
    count_repeats: bool = Field(False, description="count every crossing of a track, not once per direction")
    backfill_seconds: float = Field(
        0.5,
        ge=0.0,
        le=5.0,
        description="project a new track's path this far back to count a crossing made before it was "
        "first seen; 0 = off (a door just past the line)",
    )
    forward_seconds: float = Field(
        1.5,
        ge=0.0,
        le=5.0,
        description="project the path of a track given up on this far ahead to count a crossing made "
        "after it was last seen (reported when the tracker gives it up); 0 = off",
    )

    @field_validator("points")
    @classmethod
    def _nonzero_length(cls, value: tuple[Point, Point]) -> tuple[Point, Point]:
        (ax, ay), (bx, by) = value
        if ax == bx and ay == by:
            msg = "line has zero length (both points are equal)"
            raise ValueError(msg)
        return value


class ZoneConfig(_Strict):
    """A polygon zone with enter / exit / loitering events and occupancy."""

    name: Name
    polygon: tuple[Point, ...] = Field(min_length=3, description="vertices in the camera's coordinates")
    anchor: Anchor = "bottom_center"
    classes: tuple[ClassRef, ...] | None = None
    inertia: int = Field(
        3, ge=1, description="frames inside (outside) before enter (exit); more = fewer flicker events, later"
    )
    loiter_seconds: float | None = Field(None, gt=0.0, description="dwell that raises one loitering event")
    max_gap_seconds: float = Field(
        1.0, gt=0.0, description="longest unseen gap inside one run of sightings; longer restarts the run"
    )

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, value: tuple[Point, ...]) -> tuple[Point, ...]:
        if len(value) < 3:
            return value  # min_length reports it
        if polygon_self_intersects(value):
            msg = "polygon is self-intersecting (its edges cross)"
            raise ValueError(msg)
        if abs(polygon_area(value)) < 1e-9:
            msg = "polygon has zero area"
            raise ValueError(msg)
        return value


class SnapshotConfig(_Strict):
    """Event snapshots: a JPEG of the frame of each event, published retained on ``<camera>/snapshot``.

    Encoding runs in its own thread and is skipped (and counted) when it falls behind, so it never slows
    the pipeline; each snapshot still costs that thread a resize and a JPEG encode.
    """

    enabled: bool = True
    mode: Literal["full", "crop"] = Field(
        "full", description="full = the whole frame with the object's box; crop = around the object"
    )
    max_width: int = Field(
        640, ge=64, le=4096, description="pixels; wider images are scaled down (bigger = sharper, more bytes)"
    )
    quality: int = Field(80, ge=10, le=100, description="JPEG quality; higher = sharper, bigger messages")
    crop_margin: float = Field(
        0.5, ge=0.0, le=5.0, description="crop mode: context kept around the box, as a fraction of its size"
    )


class CameraConfig(_Strict):
    """One video source and the analytics drawn on it."""

    name: Name
    source: str = Field(min_length=1, description="rtsp:// or http(s):// URL, a file path, or /dev/videoN")
    enabled: bool = True
    fps: float | None = Field(None, gt=0.0, description="cap on processed frames/s; lower = less CPU")
    coordinates: Literal["pixels", "normalized"] = Field(
        "pixels", description="unit of line points and zone polygons: pixels, or 0..1 of width/height"
    )
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport; udp has less latency")
    loop: bool = Field(False, description="files only: start again at the end (demos)")
    realtime: bool = Field(False, description="files only: pace reading at the file's fps (demos)")
    stall_timeout: float = Field(10.0, gt=0.0, description="seconds without a frame before reconnecting")
    lines: tuple[LineConfig, ...] = ()
    zones: tuple[ZoneConfig, ...] = ()
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)


Provider = Literal["auto", "cpu", "cuda", "tensorrt"]


class ModelConfig(_Strict):
    """The detection model and how it runs."""

    path: str = Field(
        "yolov8n.onnx",
        description="ONNX file; a bare name is looked up in $EDGE_MODELS, ./models, ../shared/models",
    )
    providers: tuple[Provider, ...] = Field(
        ("auto",), description="auto = TensorRT -> CUDA -> CPU as available; or an explicit ordered list"
    )
    confidence: Probability = Field(0.25, description="score threshold; lower finds more, and more noise")
    iou: Probability = Field(0.45, description="NMS overlap; lower merges more neighbouring boxes")
    classes: tuple[ClassRef, ...] | None = Field(None, description="keep only these classes (names or ids)")
    max_detections: int = Field(300, ge=1, le=10_000)
    batch_size: int = Field(4, ge=1, le=64, description="frames per model run across cameras")
    max_batch_wait_ms: float = Field(
        5.0, ge=0.0, le=1000.0, description="how long to wait to fill a batch; more = throughput, latency"
    )
    intra_op_threads: int | None = Field(None, ge=1, description="ORT CPU threads; null = all cores")
    labels_file: str | None = Field(None, description="one class name per line, if the model has none")
    trt_cache_dir: str | None = Field(None, description="TensorRT engine cache (default: state_dir/trt)")
    backend: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto", description="auto = ORT on a usable NVIDIA GPU, else OpenVINO if installed, else ORT on CPU"
    )
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = Field(
        "CPU", description="OpenVINO device: CPU, GPU (Intel iGPU), NPU, AUTO (OpenVINO picks)"
    )
    precision: Literal["auto", "f32", "bf16", "f16"] = Field(
        "auto", description="auto = f32, agrees with ORT; OpenVINO bf16/f16 are faster, boxes move a few px"
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("providers")
    @classmethod
    def _auto_alone(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            msg = "at least one provider is needed (use auto)"
            raise ValueError(msg)
        if "auto" in value and len(value) > 1:
            msg = "auto cannot be combined with other providers"
            raise ValueError(msg)
        return value


class TrackerConfig(_Strict):
    """ByteTrack tunables (see docs/tracking.md)."""

    track_thresh: Probability = Field(0.5, description="score above which a detection is 'high'")
    low_thresh: Probability = Field(0.1, description="scores below this are ignored entirely")
    new_track_thresh: Probability | None = Field(
        None, description="score needed to start a track (default track_thresh + 0.1); higher = fewer ghosts"
    )
    match_thresh: Probability = Field(0.8, description="max 1-IoU cost to match; higher = more lenient")
    track_buffer: int = Field(
        60, ge=1, description="frames at 30 fps (2 s at any fps) a lost track is kept for re-id and links"
    )
    fuse_score: bool = Field(True, description="weight IoU by detection score when matching")
    max_tracks: int = Field(
        1024, ge=1, le=1_000_000, description="slot capacity; new tracks beyond it are dropped"
    )
    link_distance: float | None = Field(
        None,
        ge=0.0,
        description="heights a new track may be from a lost one to continue its counts; 0 = off; "
        "null = 3 at <= 10 fps, 2.5 above",
    )
    center_gate: float = Field(
        1.0, ge=0.0, description="at <= 10 fps, match by predicted centre within this many heights; 0 = off"
    )
    confirm_thresh: Probability | None = Field(
        0.9,
        description="at <= 10 fps, a new track this confident is reported at once, not a frame later; "
        "lower = more one-frame ghosts; null = wait (official)",
    )
    camera_motion: bool = Field(
        True, description="follow a panning or moving camera (a shift voted by the tracks)"
    )


class MqttConfig(_Strict):
    """The MQTT broker events are published to."""

    enabled: bool = True
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = Field(
        None, description="also read from $CREDENTIALS_DIRECTORY/mqtt_password"
    )
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = Field(False, description="skip certificate host checks; only for testing")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str | None = None
    keepalive: int = Field(30, ge=5, le=3600, description="seconds; the last will fires after ~1.5x this")
    topic_prefix: str = Field("edge", pattern=r"^[^#+\s]+$")
    qos: Literal[0, 1] = Field(
        1, description="1 = at least once, kept in the outbox until PUBACK; 0 = fire and forget"
    )
    outbox_max_events: int = Field(100_000, ge=1, description="oldest events are dropped beyond this")
    outbox_max_age_s: float = Field(7 * 86400.0, gt=0.0, description="events older than this are dropped")
    ha_discovery: bool = True
    ha_prefix: str = "homeassistant"

    @model_validator(mode="after")
    def _cert_needs_key(self) -> MqttConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            msg = "tls_cert and tls_key must be given together"
            raise ValueError(msg)
        return self


class MetricsConfig(_Strict):
    """Prometheus /metrics, /healthz and the debug view."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes it to the network")
    port: int = Field(9108, ge=0, le=65535, description="0 picks a free port")
    allowed_hosts: tuple[str, ...] = Field(
        (), description="Host header names accepted besides localhost and the bind address; '*' = any"
    )


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = Field(False, alias="json", description="one JSON object per line")


class TracksBusConfig(_Strict):
    """ZeroMQ PUB socket with every processed frame's tracks, for local programs."""

    enabled: bool = False
    endpoint: str = Field("tcp://127.0.0.1:5560", pattern=r"^(tcp|ipc)://.+")
    format: Literal["json", "msgpack"] = Field("json", description="msgpack needs `pip install msgpack`")
    hwm: int = Field(
        100, ge=1, description="frames queued per subscriber; more rides out stalls, costs memory"
    )


def _default_state_dir() -> Path:
    # systemd's StateDirectory= exports the real path; fall back to the FHS location.
    return Path(os.environ.get("STATE_DIRECTORY", str(DEFAULT_STATE_DIR)).split(":")[0])


class Settings(BaseSettings):
    """The whole daemon."""

    model_config = SettingsConfigDict(
        env_prefix="EDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    node: Name = Field("edge", description="this box's name, used in MQTT topics")
    state_dir: Path = Field(default_factory=_default_state_dir, description="outbox and counters")
    shutdown_timeout: float = Field(
        20.0, gt=0.0, le=600.0, description="graceful stop budget; keep below systemd TimeoutStopSec"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    tracks_bus: TracksBusConfig = Field(default_factory=TracksBusConfig)
    cameras: tuple[CameraConfig, ...] = Field(min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the YAML file (passed as init kwargs); no .env or secrets_dir magic.
        return (env_settings, init_settings)

    def camera(self, name: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        known = ", ".join(c.name for c in self.cameras)
        msg = f"no camera named {name!r} in the config (cameras: {known})"
        raise KeyError(msg)


# ----------------------------------------------------------------------------------------------------------
# Geometry checks used by the validators (kept here so config has no dependency on the analytics stage).


def polygon_area(points: Sequence[Point]) -> float:
    """Signed area by the shoelace formula."""
    total = 0.0
    n = len(points)
    for i in range(n):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % n]
        total += x1 * y2 - x2 * y1
    return total / 2.0


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True if the closed segments p1p2 and q1q2 share a point."""
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True

    def on_segment(a: Point, b: Point, c: Point) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return (
        (d1 == 0 and on_segment(q1, q2, p1))
        or (d2 == 0 and on_segment(q1, q2, p2))
        or (d3 == 0 and on_segment(p1, p2, q1))
        or (d4 == 0 and on_segment(p1, p2, q2))
    )


def polygon_self_intersects(points: Sequence[Point]) -> bool:
    """True if two non-adjacent edges of the closed polygon touch or cross (not a simple polygon)."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex by construction
            if _segments_cross(*edges[i], *edges[j]):
                return True
    return False


# ----------------------------------------------------------------------------------------------------------
# Model lookup and class names


def resolve_model_path(path: str, config_dir: Path | None = None) -> Path:
    """Where a configured model file really is.

    A path with a directory part is used as given (relative to the config file's folder, then the current
    directory). A bare file name is looked up in ``$EDGE_MODELS``, ``./models``, ``../shared/models``; the
    first existing one wins, else the ``./models`` candidate is returned so the error names a sensible path.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.parent != Path():
        if config_dir is not None and (config_dir / p).exists():
            return config_dir / p
        return p
    candidates = []
    if env := os.environ.get("EDGE_MODELS"):
        candidates.append(Path(env) / p)
    candidates += [Path("models") / p, Path("..") / "shared" / "models" / p]
    for c in candidates:
        if c.exists():
            return c
    return Path("models") / p


# ----------------------------------------------------------------------------------------------------------
# Loading with line numbers (the YAML and error machinery is in edge.config_errors)


def _semantic_problems(
    settings: Settings, tree: Any, class_names: Sequence[str], names_from: str = "COCO"
) -> list[ConfigProblem]:
    """Checks that need more than one field: duplicates, class names, threshold order, coordinate range."""
    problems: list[ConfigProblem] = []

    def add(loc: list[int | str], value: object, reason: str) -> None:
        _, line = _locate(tree, loc)
        problems.append(ConfigProblem(".".join(map(str, loc)), line, value, reason))

    def check_classes(loc: list[int | str], classes: tuple[ClassRef, ...] | None) -> None:
        for i, c in enumerate(classes or ()):
            if isinstance(c, int):
                if not 0 <= c < len(class_names):
                    add([*loc, i], c, f"class id out of range 0..{len(class_names) - 1}")
            elif c not in class_names:
                shown = ", ".join(class_names[:20]) + (", ..." if len(class_names) > 20 else "")
                add([*loc, i], c, f"unknown class name; the classes of {names_from} are: {shown}")

    seen_cams: dict[str, int] = {}
    for ci, cam in enumerate(settings.cameras):
        if cam.name in seen_cams:
            first = seen_cams[cam.name]
            add(["cameras", ci, "name"], cam.name, f"duplicate camera name (also cameras.{first})")
        seen_cams.setdefault(cam.name, ci)
        for kind in ("lines", "zones"):
            items: tuple[LineConfig | ZoneConfig, ...] = getattr(cam, kind)
            names: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.name in names:
                    add(["cameras", ci, kind, i, "name"], item.name, f"duplicate {kind[:-1]} name in camera")
                names.setdefault(item.name, i)
                check_classes(["cameras", ci, kind, i, "classes"], item.classes)
                pts = item.points if isinstance(item, LineConfig) else item.polygon
                field = "points" if isinstance(item, LineConfig) else "polygon"
                if cam.coordinates == "normalized" and any(
                    not (0.0 <= v <= 1.0) for pt in pts for v in pt
                ):
                    add(
                        ["cameras", ci, kind, i, field],
                        [list(p) for p in pts],
                        "normalized coordinates must be within 0..1",
                    )
                if any(v < 0 for pt in pts for v in pt):
                    add(["cameras", ci, kind, i, field], [list(p) for p in pts], "negative coordinate")
    check_classes(["model", "classes"], settings.model.classes)
    if settings.model.backend == "onnxruntime" and settings.model.precision in ("bf16", "f16"):
        add(["model", "precision"], settings.model.precision, "needs backend openvino (ORT runs f32)")
    t = settings.tracker
    if t.low_thresh >= t.track_thresh:
        add(["tracker", "low_thresh"], t.low_thresh, "must be below tracker.track_thresh")
    if not any(c.enabled for c in settings.cameras):
        add(["cameras"], None, "no camera is enabled")
    return problems


def load_settings(
    path: Path | str,
    *,
    check_model_classes: bool = True,
) -> Settings:
    """Load and validate a config file; raise :class:`ConfigError` with every problem found.

    Args:
        path: the YAML file.
        check_model_classes: read the model's class names (a fraction of a second) to check class names
            in the config; when false, or when the model cannot be read, the COCO names are used.
    """
    path = Path(path)
    env = os.environ
    tree = _read_yaml(path)
    data = _to_plain(tree)
    env_keys = {k.removeprefix("EDGE_") for k in env if k.startswith("EDGE_")}

    mqtt = data.get("mqtt")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    password_given = (isinstance(mqtt, dict) and mqtt.get("password")) or "MQTT__PASSWORD" in env_keys
    if cred_dir and not password_given:
        cred = Path(cred_dir) / CREDENTIAL_MQTT_PASSWORD
        # An empty file means "no password": install.sh creates one because systemd refuses to start a
        # unit whose LoadCredential= file is missing.
        secret = cred.read_text(encoding="utf-8").rstrip("\n") if cred.is_file() else ""
        if secret:
            data.setdefault("mqtt", {})
            if isinstance(data["mqtt"], dict):
                data["mqtt"]["password"] = secret

    try:
        settings = Settings(**data)
    except ValidationError as err:
        raise ConfigError(_problems_from_validation(err, tree, env_keys), str(path)) from None

    class_names: Sequence[str] = COCO_CLASSES
    names_from = "the COCO model"
    problems: list[ConfigProblem] = []
    if check_model_classes:
        from edge.class_names import model_class_names  # noqa: PLC0415 - it imports this module

        names, names_from = model_class_names(settings.model, path.parent)
        if names is not None:
            class_names = names
        elif not settings.model.labels_file:
            names_from = "COCO (the model has no names metadata)"
        else:
            _, line = _locate(tree, ["model", "labels_file"])
            reason = f"cannot be read, or has no class names (one per line expected): {names_from}"
            problems.append(ConfigProblem("model.labels_file", line, settings.model.labels_file, reason))
    if not problems:
        problems = _semantic_problems(settings, tree, class_names, names_from)
    if problems:
        raise ConfigError(problems, str(path))
    return settings


def class_ids(refs: Sequence[ClassRef] | None, class_names: Sequence[str]) -> frozenset[int] | None:
    """Class names or ids -> a set of ids (``None`` stays ``None``: every class)."""
    if refs is None:
        return None
    index = {n: i for i, n in enumerate(class_names)}
    return frozenset(r if isinstance(r, int) else index[r] for r in refs)


def to_pixels(points: Sequence[Point], coordinates: str, width: int, height: int) -> list[Point]:
    """Convert configured points to pixels for a frame of the given size."""
    if coordinates == "normalized":
        return [(x * width, y * height) for x, y in points]
    return [(float(x), float(y)) for x, y in points]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editors (YAML language servers)."""
    schema = Settings.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edge configuration"
    return schema
