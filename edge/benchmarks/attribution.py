"""``edge bench attribution``: where the counting benchmark's wrong counts come from, person by person.

``edge bench counting`` says how wrong the counts are; this says why, so that the next rule is aimed
at a cause that is really there. It runs the same protocol (same grid of lines, same ground truth, same
tracker and analytics defaults, same rates) and gives every count and every true crossing a cause:

* every frame's rows (tracked or not) are matched to the ground-truth boxes (IoU >= 0.5, optimal
  one-to-one), and each track is given its **majority person**, the ground-truth id it matched most;
* for each (line, direction), a count made by a track whose majority person truly crossed that line in
  that direction (and was not yet credited) is ``counted``; every other count is an **extra**, and
  every true crossing left over is a **miss**, classified by what the tracker had of that person within
  :data:`WINDOW_SECONDS` of the crossing.

The categories (:data:`CATEGORIES`) are listed with what usually lies behind them. An extra and a
miss of the same (line, direction) cancel in the error; the ``wrong`` column is the benchmark's own
``sum |pred - gt|``, so the categories explain it rather than add up to it.

The held-out sequences of the counting protocol (MOT17-05, -11, -13) are refused unless
``--allow-held-out`` is given: looking at why they fail is tuning on them, and their figures are only
worth something while they decide nothing (docs/benchmarks.md). Use the tuning sequences and the
development sets of ``scripts/make_counting_devsets.py``::

    .venv/bin/python -m edge bench attribution --rates 5
    .venv/bin/python -m edge bench attribution --data /tmp/dev/mot15 --seqs PETS09-S2L1 --examples 5
    .venv/bin/python -m edge bench attribution --line-kw '{"backfill_seconds": 0}'   # one lever
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.benchmarks import counting

WINDOW_SECONDS = 1.0
"""A miss is classified by what the tracker had of that person this close (in time) to the crossing."""

CATEGORIES: dict[str, str] = {
    "counted": "counted by a track whose majority person made this crossing",
    "extra: counted again": "a second count of a person's crossing (a fragment of the person's track)",
    "extra: person did not cross": "the track's majority person made no such crossing (an id switch carried "
    "the track to someone else, or its anchor jittered over the line)",
    "extra: no person": "the track matched no ground-truth person (a false or badly placed detection)",
    "miss: not detected": "no box of that person within the window: the detector's share",
    "miss: detected, not tracked": "boxes, but none in a confirmed track (low scores, or too few frames)",
    "miss: tracked before only": "tracked before the crossing, not after it (forward projection's job)",
    "miss: tracked after only": "tracked after the crossing, not before it (back-projection's job)",
    "miss: two tracks": "one track before and another after, not linked (or the link lost the passage)",
    "miss: one track, counted for another": "one track on both sides counted it, but its majority is "
    "another person (the total can still be right)",
    "miss: one track, no count": "one track on both sides and no count of it: an 'already counted' flag, "
    "a wiggle of the ground truth over the line, or a crossing round a segment's end",
}


@dataclass
class Attribution:
    """Causes of one run's counts: ``causes[category]`` is how many counts or true crossings fell there;
    ``wrong`` and ``truth`` are the benchmark's ``sum |pred - gt|`` and ``sum gt``; ``over`` is the
    part of ``wrong`` where edge counted too many. ``examples[category]`` lists ``(sequence, line,
    direction, id, frame)``: the track's id for a count, the person's for a true crossing."""

    causes: Counter[str] = field(default_factory=Counter)
    wrong: int = 0
    truth: int = 0
    over: int = 0
    examples: dict[str, list[tuple[str, str, str, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, other: Attribution) -> None:
        self.causes.update(other.causes)
        self.wrong += other.wrong
        self.truth += other.truth
        self.over += other.over
        for k, v in other.examples.items():
            self.examples[k].extend(v)


def attribute(
    seq: counting.Sequence,
    lines: counting.LineDefs,
    stride: int,
    *,
    line_kw: dict[str, Any] | None = None,
    analytics_kw: dict[str, Any] | None = None,
    tracker_kw: dict[str, Any] | None = None,
) -> Attribution:
    """Run edge on every ``stride``-th frame of ``seq`` (as :func:`edge.benchmarks.counting.run_edge`,
    with the same overrides) and attribute its counts and the true crossings."""
    from edge.events import LineCrossing, LineSpec  # noqa: PLC0415
    from edge.tools.evaluate import gt_events, read_gt, tally  # noqa: PLC0415

    truth, true_events = gt_events(seq.path / "gt.txt", [LineSpec(n, a, b) for n, (a, b) in lines.items()])
    frames, ids, boxes = read_gt(seq.path / "gt.txt")
    starts = np.searchsorted(frames, np.arange(seq.length + 2))

    analytics = counting.edge_analytics(seq, lines, line_kw=line_kw, analytics_kw=analytics_kw)
    counts: list[tuple[str, str, int, int]] = []  # (line, direction, track id, frame)
    votes: dict[int, Counter[int]] = defaultdict(Counter)  # track id -> person -> frames
    seen: dict[int, dict[int, int]] = defaultdict(dict)  # person -> frame -> track id (-1: untracked box)
    for f, tracked, events in counting.edge_frames(seq, stride, analytics, tracker_kw=tracker_kw):
        counts.extend((e.line, e.direction, e.track_id, f) for e in events if isinstance(e, LineCrossing))
        lo, hi = starts[f], starts[f + 1]
        r, c = counting.match_iou(boxes[lo:hi], tracked.xyxy)
        for person, track in zip(ids[lo:hi][r].tolist(), tracked.track_id[c].tolist(), strict=True):
            seen[person][f] = track
            if track >= 0:
                votes[track][person] += 1
    majority = {t: v.most_common(1)[0][0] for t, v in votes.items()}

    out = Attribution()
    predicted = tally(analytics)
    for key, n in tally(truth).items():  # every (line, direction), zeros included
        out.truth += n
        out.wrong += abs(predicted[key] - n)
        out.over += max(predicted[key] - n, 0)

    window = WINDOW_SECONDS * seq.fps
    keys = {(e.line, e.direction) for e in true_events} | {(ln, d) for ln, d, _t, _f in counts}
    for line, direction in sorted(keys):
        crossings = [(e.track_id, e.frame) for e in true_events if (e.line, e.direction) == (line, direction)]
        made = [(t, f) for ln, d, t, f in counts if (ln, d) == (line, direction)]
        counting_tracks = {t for t, _f in made}
        open_people = Counter(p for p, _f in crossings)
        crossed = set(open_people)
        for track, f in made:
            person = majority.get(track)
            if person is not None and open_people[person] > 0:
                open_people[person] -= 1
                cause = "counted"
            elif person is None:
                cause = "extra: no person"
            else:
                cause = "extra: counted again" if person in crossed else "extra: person did not cross"
            out.causes[cause] += 1
            out.examples[cause].append((seq.name, line, direction, track, f))
        for person, f in crossings:
            if open_people[person] == 0:
                continue
            open_people[person] -= 1
            cause = _miss(seen.get(person, {}), f, window, counting_tracks)
            out.causes[cause] += 1
            out.examples[cause].append((seq.name, line, direction, person, f))
    return out


def _miss(seen: dict[int, int], frame: int, window: float, counting_tracks: set[int]) -> str:
    """The category of a true crossing at ``frame`` that no track of that person counted; ``seen`` maps
    frames to the track that had the person's box (-1: a box outside any confirmed track)."""
    near = {f: t for f, t in seen.items() if abs(f - frame) <= window}
    if not near:
        return "miss: not detected"
    before = {t for f, t in near.items() if f <= frame and t >= 0}
    after = {t for f, t in near.items() if f > frame and t >= 0}
    if not before and not after:
        return "miss: detected, not tracked"
    if not after:
        return "miss: tracked before only"
    if not before:
        return "miss: tracked after only"
    both = before & after
    if not both:
        return "miss: two tracks"
    return "miss: one track, counted for another" if both & counting_tracks else "miss: one track, no count"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edge bench attribution", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=counting.DEFAULT_DATA, help="folder of MOT-layout sequences")
    ap.add_argument(
        "--seqs", nargs="*", help=f"sequence names (default: all; MOT17: {', '.join(counting.TUNED)})"
    )
    ap.add_argument("--rates", nargs="*", default=["native", "5"], help="'native' and/or target fps")
    ap.add_argument("--examples", type=int, default=0, help="print this many examples of each category")
    ap.add_argument("--json", type=Path, help="write every figure and example here")
    ap.add_argument(
        "--allow-held-out",
        action="store_true",
        help="also run the held-out MOT17 sequences (this makes them tuning data; see the module docstring)",
    )
    counting.add_variant_args(ap)
    args = ap.parse_args(argv)
    names = args.seqs
    if not names and args.data.resolve() == counting.DEFAULT_DATA.resolve():
        names = list(counting.TUNED)
    seqs = counting.load(args.data, names)
    held = [s.name for s in seqs if s.name in counting.HELD_OUT]
    if held and not args.allow_held_out:
        print(
            f"edge bench attribution: {', '.join(held)} held out in the counting protocol; "
            "attributing them makes them tuning data (--allow-held-out to do it anyway)",
            file=sys.stderr,
        )
        return 2
    if not seqs:
        print(f"edge bench attribution: no sequences in {args.data}", file=sys.stderr)
        return 2
    problem = counting.variant_problem(counting.variant_kw(args))
    if problem:
        print(f"edge bench attribution: {problem}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    for rate in args.rates:
        target = None if rate == "native" else float(rate)
        total = Attribution()
        rows: dict[str, Attribution] = {}
        for seq in seqs:
            rows[seq.name] = attribute(
                seq,
                counting.grid_lines(seq.width, seq.height),
                counting.stride_for(seq.fps, target),
                **counting.variant_kw(args),
            )
            total.add(rows[seq.name])
        rows["total"] = total
        _print(rate, rows, args.examples)
        report[rate] = {
            name: {
                "wrong": a.wrong,
                "over": a.over,
                "truth": a.truth,
                "causes": dict(a.causes),
                "examples": a.examples,
            }
            for name, a in rows.items()
        }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


def _print(rate: str, rows: dict[str, Attribution], examples: int) -> None:
    names = list(rows)
    width = max(len(c) for c in CATEGORIES)
    print(f"\n== {rate} fps" if rate != "native" else "\n== native rate")
    print(f"  {'':<{width}} " + " ".join(f"{n:>12}" for n in names))
    print(f"  {'wrong (over)':<{width}} " + " ".join(f"{f'{a.wrong} ({a.over})':>12}" for a in rows.values()))
    print(f"  {'true crossings':<{width}} " + " ".join(f"{a.truth:>12}" for a in rows.values()))
    for cause in CATEGORIES:
        print(f"  {cause:<{width}} " + " ".join(f"{a.causes.get(cause, 0):>12}" for a in rows.values()))
    if examples:
        for cause in CATEGORIES:
            for name, line, direction, who, frame in rows["total"].examples.get(cause, [])[:examples]:
                print(f"    {cause}: {name} line {line} {direction}, id {who}, frame {frame}")


if __name__ == "__main__":
    sys.exit(main())
