"""The ``edge`` command line.

Every user error (bad config, missing model, unreadable source) ends as plain lines on stderr and a
sysexits code (78 for configuration); only bugs produce a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.early_signals import EarlySignals
from edge.errors import ConfigError, EdgeError

log = logging.getLogger("edge")

# Commands implemented in their own modules: name -> (module, function, one-line help). Each takes the
# rest of the command line and returns an exit code. Only commands that exist are listed.
DELEGATED: dict[str, tuple[str, str, str]] = {
    "annotate": ("edge.tools.annotate", "main", "draw boxes, ids, trails, lines and zones onto a video"),
    "replay": ("edge.tools.replay", "main", "run MOT detections or a video through tracker and analytics"),
    "evaluate": ("edge.tools.evaluate", "main", "compare line counts with MOT ground truth"),
}

# `edge bench NAME ...`: benchmark name -> (module with main(argv), one-line help).
BENCHES: dict[str, tuple[str, str]] = {
    "detector": ("edge.benchmarks.detector", "detector stage vs the bare runtime call, per backend"),
    "tracker": ("edge.benchmarks.tracker", "tracker accuracy and speed on MOT17, against peers"),
    "counting": ("edge.benchmarks.counting", "line-count error on a 36-line grid over MOT17, vs supervision"),
    "attribution": ("edge.benchmarks.attribution", "the causes of `bench counting`'s wrong counts"),
    "analytics": ("edge.benchmarks.analytics", "line and zone analytics time per frame on MOT17 tracks"),
    "capture": ("edge.benchmarks.capture", "capture decode rate vs `ffmpeg -benchmark` on a 1080p file"),
    "pipeline": ("edge.benchmarks.pipeline", "whole daemon on N RTSP streams vs decode + bare ORT limit"),
}


def _cmd_bench(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in BENCHES:
        print("usage: edge bench {" + ",".join(BENCHES) + "} [options]\n", file=sys.stderr)
        width = max(len(name) for name in BENCHES)
        for name, (_, help_text) in BENCHES.items():
            print(f"  {name:<{width}}  {help_text}", file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module, _ = BENCHES[argv[0]]
    bench_main: Callable[[list[str]], int] = importlib.import_module(module).main
    return bench_main(argv[1:])


def _cmd_version(_: argparse.Namespace) -> int:
    import numpy as np  # noqa: PLC0415

    from edge import __version__  # noqa: PLC0415 - read from the package metadata only when asked

    versions = {"edge": __version__, "python": sys.version.split()[0], "numpy": np.__version__}
    for mod in ("onnxruntime", "cv2", "numba", "paho.mqtt", "zmq", "pydantic"):
        try:
            versions[mod] = str(getattr(importlib.import_module(mod), "__version__", "?"))
        except ImportError:
            versions[mod] = "missing"
    print(" ".join(f"{k}={v}" for k, v in versions.items()))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from edge.config import json_schema  # noqa: PLC0415

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from edge.config import load_settings  # noqa: PLC0415
    from edge.lint import lint_settings  # noqa: PLC0415

    settings = load_settings(args.config)
    warnings = lint_settings(settings, Path(args.config))
    for w in warnings:
        print(f"{args.config}: warning: {w}", file=sys.stderr)
    if args.print:
        from edge.lint import dump_effective  # noqa: PLC0415

        sys.stdout.write(dump_effective(settings))
    n_lines = sum(len(c.lines) for c in settings.cameras)
    n_zones = sum(len(c.zones) for c in settings.cameras)
    print(
        f"{args.config}: OK ({len(settings.cameras)} camera(s), {n_lines} line(s), {n_zones} zone(s), "
        f"{len(warnings)} warning(s))",
        file=sys.stderr,
    )
    return 0


def _cmd_run(args: argparse.Namespace, early: EarlySignals | None = None) -> int:
    from edge.app import run_daemon  # noqa: PLC0415 - loads onnxruntime, numba, cv2

    return run_daemon(Path(args.config), print_events=args.print_events, early_signals=early)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Camera analytics daemon: RTSP -> YOLO (ONNX Runtime) -> ByteTrack -> line/zone events.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the daemon: cameras -> detector -> tracker -> events -> MQTT")
    p.add_argument("--config", required=True, help="YAML config file (see config/example.yaml)")
    p.add_argument("--print-events", action="store_true", help="also print one line per event to stdout")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check-config", help="validate a config file and lint its geometry")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--print", action="store_true", help="print the effective config (secrets masked)")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("schema", help="print the JSON Schema of the config file (for editors)")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("version", help="print versions of edge and its runtime libraries")
    p.set_defaults(func=_cmd_version)

    for name, (_, _, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    sub.add_parser("bench", help="benchmarks: " + ", ".join(BENCHES), add_help=False)
    return parser


def _run_guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except ConfigError as err:
        for line in err.lines():
            print(line, file=sys.stderr)
        print(f"{len(err.problems)} problem(s) in the configuration", file=sys.stderr)
        return err.exit_code
    except EdgeError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Delegated commands parse their own options, so `edge replay --help` shows replay's help.
    first = args_list[0] if args_list else None
    if first == "bench":
        logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
        return _run_guarded(lambda: _cmd_bench(args_list[1:]))
    if first in DELEGATED:
        module, func, _ = DELEGATED[first]
        logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
        target: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
        return _run_guarded(lambda: target(args_list[1:]))

    early: EarlySignals | None = None
    if first == "run":
        # Before anything slow (the imports below take seconds): a SIGTERM or SIGHUP during startup must
        # not take the default action, which kills the process.
        early = EarlySignals()
        early.install()
    parser = build_parser()
    args = parser.parse_args(args_list)
    if early is not None:
        return _run_guarded(lambda: _setup_and_run(args, early))
    from edge.logs import setup_logging  # noqa: PLC0415

    setup_logging(args.log_level)
    result: int = _run_guarded(lambda: int(args.func(args)))
    return result


def _setup_and_run(args: argparse.Namespace, early: EarlySignals) -> int:
    from edge.logs import setup_logging  # noqa: PLC0415

    setup_logging(args.log_level)
    return _cmd_run(args, early)


if __name__ == "__main__":
    sys.exit(main())
