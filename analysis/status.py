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
    done_col: list[float] = []
    left_col: list[float] = []
    status_col: list[str] = []
    reason_col = list(runs["reason"]) if "reason" in runs else [None] * len(runs)
    for i, rec in enumerate(runs.to_dict("records")):
        st = rec.get("status")
        done, left = math.nan, math.nan
        if st in ("running", "preempted"):
            d, m, mt = epoch_progress(str(rec.get("path") or ""))
            done = float(d)
            if m is not None:
                rec["last_epoch_seconds"] = m
            rec["metrics_mtime"] = mt
            epochs = rec.get("epochs")
            if m is not None and isinstance(epochs, (int, float)) and epochs == epochs:
                left = max(float(epochs) - d, 0.0) * m
            st = effective_status(rec, now)
            if st == "lost":
                hb = rec.get("heartbeat")
                seen = hb if isinstance(hb, (int, float)) and hb == hb else None
                seen = seen or max(t for t in (rec.get("mtime"), mt) if t is not None)
                reason_col[i] = (
                    f"lost: no sign of life for {_duration(now - float(seen))} (last at epoch {d})"
                )
        status_col.append(str(st))
        done_col.append(done)
        left_col.append(left)
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
    from analysis.grid import sweep_axes

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
    runs = runs.assign(sweep=[os.path.dirname(str(p)) for p in runs["path"]])
    for sweep, g in runs.groupby("sweep", sort=True):
        rows, cols = sweep_axes(g)
        axes = [a for a in (*rows, *cols) if g[a].nunique(dropna=False) > 1] or ["method", "mix"]
        counts = Counter(g["status"])
        cells = []
        for _, cg in g.groupby(g["cell_hash"].fillna(g["config_hash"]), sort=False):
            rec = cg.iloc[0].to_dict()
            left = cg["seconds_left"].max() if cg["seconds_left"].notna().any() else math.nan
            bad = cg[cg["status"].isin(("failed", "lost"))]
            cells.append(
                CellStatus(
                    _cell_label(rec, axes),
                    dict(Counter(cg["status"])),
                    float(left),
                    [str(r) for r in bad["reason"].fillna("no reason recorded")],
                )
            )
        cells.sort(key=lambda x: x.label)
        bad = g[g["status"].isin(("failed", "lost"))]
        groups: dict[str, list[str]] = {}
        for why, p in zip(bad["reason"], bad["path"]):
            groups.setdefault(reason_group(why), []).append(str(p))
        reasons = sorted(
            ((w, len(ps), Path(ps[0]).name) for w, ps in groups.items()), key=lambda t: -t[1]
        )
        left = g["seconds_left"]
        out.append(
            SweepStatus(
                str(sweep),
                dict(counts),
                cells,
                reasons,
                float(left.max()) if left.notna().any() else math.nan,
                float(left.sum()) if left.notna().any() else math.nan,
                corrupt_by_sweep.get(str(sweep), 0),
            )
        )
    return out
