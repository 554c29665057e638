"""Where sweeps stand: per sweep and per cell, ok / running / failed / preempted / lost runs,
the failure reasons grouped, and the time left estimated from the epoch times.

A *sweep* is the directory that holds run directories (``multirun/<experiment>``), a *cell* is
one config without its seed (``cell_hash``). Statuses come from
:func:`analysis.collect.effective_status` (a ``running`` record with no sign of life for
3 x its heartbeat interval, at least 5 minutes, is ``lost``). The time left of a running or
preempted run is (epochs - epochs done) x its mean ``epoch_seconds`` in ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.collect import METRICS, Collected, collect, effective_status

STATES = ("ok", "running", "failed", "preempted", "lost")
UNFINISHED = ("running", "preempted", "lost")


def epoch_progress(run_dir: str) -> tuple[int, float | None, float | None]:
    """``(epochs done, mean epoch seconds, metrics.jsonl mtime)`` from a run's metrics.jsonl."""
    p = os.path.join(run_dir, METRICS)
    try:
        with open(p, "rb") as f:
            lines = f.read().splitlines()
        mtime = os.stat(p).st_mtime
    except OSError:
        return 0, None, None
    done, secs = 0, []
    for ln in lines:
        try:
            r = json.loads(ln)
        except ValueError:
            continue
        if isinstance(r, dict):
            done = max(done, int(r.get("epoch") or 0))
            s = r.get("epoch_seconds")
            if isinstance(s, (int, float)) and math.isfinite(s):
                secs.append(float(s))
    return done, (sum(secs) / len(secs) if secs else None), mtime


def with_effective_status(runs: pd.DataFrame, now: float | None = None) -> pd.DataFrame:
    """``runs`` with ``status`` replaced by the effective one (lost runs get a reason), plus
    ``epochs_done`` and ``seconds_left`` for unfinished runs."""
    now = time.time() if now is None else now
    runs = runs.copy()
    n = len(runs)
    done_col = [math.nan] * n
    left_col = [math.nan] * n
    status_col = [str(x) for x in runs["status"]]
    reason_col = list(runs["reason"]) if "reason" in runs else [None] * n
    todo = [i for i, st in enumerate(status_col) if st in ("running", "preempted")]
    if todo:  # only unfinished runs need their metrics.jsonl read
        for i, rec in zip(todo, runs.iloc[todo].to_dict("records")):
            d, m, mt = epoch_progress(str(rec.get("path") or ""))
            done_col[i] = float(d)
            if m is not None:
                rec["last_epoch_seconds"] = m
            rec["metrics_mtime"] = mt
            epochs = rec.get("epochs")
            if m is not None and isinstance(epochs, (int, float)) and epochs == epochs:
                left_col[i] = max(float(epochs) - d, 0.0) * m
            status_col[i] = effective_status(rec, now)
            if status_col[i] == "lost":
                hb = rec.get("heartbeat")
                seen = hb if isinstance(hb, (int, float)) and hb == hb else None
                seen = seen or max(t for t in (rec.get("mtime"), mt) if t is not None)
                reason_col[i] = (
                    f"lost: no sign of life for {_duration(now - float(seen))} (last at epoch {d})"
                )
    runs["status"] = status_col
    runs["reason"] = reason_col
    runs["epochs_done"] = done_col
    runs["seconds_left"] = left_col
    return runs


def _duration(s: float) -> str:
    if s != s:
        return "?"
    s = max(0.0, s)
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


_NOISE = re.compile(r"(/[\w./+=,-]+|0x[0-9a-f]+|\b\d+(\.\d+)?\b)")


def reason_group(reason: object) -> str:
    """A failure reason with paths and numbers masked, so that alike failures group together."""
    text = " ".join(str(reason or "no reason recorded").split())
    return _NOISE.sub("…", text)[:160]


@dataclass
class CellStatus:
    label: str
    counts: dict[str, int]
    seconds_left: float  # the longest remaining run of the cell
    reasons: list[str] = field(default_factory=list)


@dataclass
class SweepStatus:
    sweep: str
    counts: dict[str, int]
    cells: list[CellStatus]
    reasons: list[tuple[str, int, str]]  # (grouped reason, count, an example run dir)
    seconds_left_max: float
    seconds_left_sum: float
    n_corrupt: int = 0

    def text(self, *, max_cells: int = 200) -> str:
        total = sum(self.counts.values())
        head = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATES)
        lines = [f"## {self.sweep}", "", f"{total} runs: {head}"]
        if self.n_corrupt:
            lines[-1] += f"; {self.n_corrupt} unreadable results.json"
        if self.seconds_left_sum == self.seconds_left_sum and self.seconds_left_sum > 0:
            lines.append(
                f"time left (unfinished runs, from their epoch times): "
                f"{_duration(self.seconds_left_max)} for the longest, "
                f"{_duration(self.seconds_left_sum)} of run time in all"
            )
        lines += ["", "| cell | " + " | ".join(STATES) + " | time left |", "|---|" + "---|" * 6]
        for c in self.cells[:max_cells]:
            left = _duration(c.seconds_left) if c.seconds_left == c.seconds_left else ""
            lines.append(
                f"| {c.label} | "
                + " | ".join(str(c.counts.get(s, 0) or "") for s in STATES)
                + f" | {left} |"
            )
        if len(self.cells) > max_cells:
            lines.append(f"| ... {len(self.cells) - max_cells} more cells | " + "| " * 6)
        if self.reasons:
            lines += ["", "Failure reasons:", ""]
            for why, n, example in self.reasons:
                lines.append(f"- {n} x {why}  (e.g. {example})")
        return "\n".join(lines) + "\n"


def _cell_label(rec: dict, axes: Sequence[str]) -> str:
    parts = []
    for a in axes:
        v = rec.get(a)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        parts.append(f"{a}={v}")
    return " ".join(parts) or "(one cell)"


def sweep_status(
    paths: Iterable[str | os.PathLike],
    *,
    now: float | None = None,
    collected: Collected | None = None,
) -> list[SweepStatus]:
    """One ``SweepStatus`` per sweep directory found under ``paths``."""
    from analysis.grid import AXIS_ORDER, _key, varying

    now = time.time() if now is None else now
    c = collected or collect(list(paths), curves=False)
    out: list[SweepStatus] = []
    corrupt = c.issues[c.issues["kind"] == "corrupt"] if len(c.issues) else c.issues
    corrupt_by_sweep = (
        Counter(os.path.dirname(str(p)) for p in corrupt["path"]) if len(corrupt) else Counter()
    )
    if c.runs.empty:
        return [
            SweepStatus(s, {}, [], [], math.nan, math.nan, n)
            for s, n in sorted(corrupt_by_sweep.items())
        ]
    runs = with_effective_status(c.runs, now)
    # Plain Python over the records: per-group pandas calls cost ~1 ms each, which adds up to
    # minutes for 100,000 runs in 1,000 sweeps.
    cols = [a for a in AXIS_ORDER if a in runs.columns]
    recs = runs[[*cols, "status", "reason", "path", "cell_hash", "config_hash", "seconds_left"]]
    by_sweep: dict[str, list[dict]] = {}
    for r in recs.to_dict("records"):
        by_sweep.setdefault(os.path.dirname(str(r["path"])), []).append(r)
    for sweep in sorted(by_sweep):
        g = by_sweep[sweep]
        axes = varying({a: [_key(r[a]) for r in g] for a in cols}) or ["method", "mix"]
        if "mix" in axes:  # the column axis last, as in the sweep's table
            axes = [a for a in axes if a != "mix"] + ["mix"]
        cells_by: dict[str, list[dict]] = {}
        for r in g:
            ch = r["cell_hash"] if isinstance(r["cell_hash"], str) else r["config_hash"]
            cells_by.setdefault(ch, []).append(r)
        cells = []
        for members in cells_by.values():
            lefts = [r["seconds_left"] for r in members if r["seconds_left"] == r["seconds_left"]]
            cells.append(
                CellStatus(
                    _cell_label(members[0], axes),
                    dict(Counter(r["status"] for r in members)),
                    max(lefts) if lefts else math.nan,
                    [
                        str(r["reason"] or "no reason recorded")
                        for r in members
                        if r["status"] in ("failed", "lost")
                    ],
                )
            )
        cells.sort(key=lambda x: x.label)
        groups: dict[str, list[str]] = {}
        for r in g:
            if r["status"] in ("failed", "lost"):
                groups.setdefault(reason_group(r["reason"]), []).append(str(r["path"]))
        reasons = sorted(
            ((w, len(ps), Path(ps[0]).name) for w, ps in groups.items()), key=lambda t: -t[1]
        )
        lefts = [r["seconds_left"] for r in g if r["seconds_left"] == r["seconds_left"]]
        out.append(
            SweepStatus(
                sweep,
                dict(Counter(r["status"] for r in g)),
                cells,
                reasons,
                max(lefts) if lefts else math.nan,
                sum(lefts) if lefts else math.nan,
                corrupt_by_sweep.get(sweep, 0),
            )
        )
    return out
