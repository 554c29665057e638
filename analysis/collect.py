"""Collect sweep outputs into one tidy table: one row per run, re-runs de-duplicated.

Walks run directories for ``results.json`` (schema: docs/ARCHITECTURE.md), reads each one,
and never crashes on what it finds: unreadable or corrupt files, files missing required
keys, running, failed and preempted runs are all reported as *issues* (a second table) and
kept out of the numbers. Re-runs of one config (same ``config_hash``) are collapsed to the
newest finished ``ok`` one; a config with no ``ok`` run keeps its newest attempt so that it
shows up as running / failed.

``metrics.jsonl`` (one JSON object per epoch) is read for the kept runs into a long
``curves`` table (``config_hash``, ``run_dir``, ``epoch``, ``step``, ``loss``, ...).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

RESULTS = "results.json"
METRICS = "metrics.jsonl"

STATUSES = ("ok", "running", "failed", "preempted", "interrupted")
# A running record whose heartbeat is older than this many intervals (and at least
# LOST_MIN_S seconds) belongs to a process that died: it is reported as "lost".
LOST_INTERVALS = 3
LOST_MIN_S = 300.0
REQUIRED = ("method", "mix", "domain", "backbone", "seed", "status", "config_hash")
NUMERIC = (
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "temperature",
    "alpha",
    "linear_top1",
    "knn_top1",
    "fewshot_top1",
    "final_loss",
    "wall_seconds",
    "world_size",
    "queue_size",
    "heartbeat",
    "heartbeat_interval_s",
)
STRINGS = (
    "method",
    "mix",
    "domain",
    "backbone",
    "status",
    "reason",
    "log_path",
    "config_hash",
    "cell_hash",
    "git_commit",
    "experiment",
    "eval",
    "loss",
    "started_at",
    "finished_at",
    "run_dir",
)
TOP1 = ("linear_top1", "knn_top1", "fewshot_top1")
# Columns every collected table has, in this order (extra keys found in files follow).
COLUMNS = (
    *REQUIRED,
    "cell_hash",
    "experiment",
    "epochs",
    "batch_size",
    "eval",
    *TOP1,
    "final_loss",
    "lr",
    "temperature",
    "alpha",
    "symmetric",
    "queue_size",
    "loss",
    "wall_seconds",
    "world_size",
    "reason",
    "started_at",
    "finished_at",
    "git_commit",
    "log_path",
    "run_dir",
    "path",
    "mtime",
    "n_attempts",
)
ISSUE_COLUMNS = ("path", "kind", "detail")


@dataclass
class Collected:
    """What ``collect`` found: kept runs, everything that needs a look, and the curves."""

    runs: pd.DataFrame
    issues: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_files: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> pd.DataFrame:
        """Kept runs whose status is ``ok`` (what tables are computed from)."""
        if self.runs.empty:
            return self.runs
        return self.runs[self.runs["status"] == "ok"]

    def describe(self) -> str:
        counts = self.issues["kind"].value_counts().to_dict() if not self.issues.empty else {}
        by_kind = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no issues"
        n_ok = len(self.ok)
        return (
            f"{self.n_files} results.json files -> {len(self.runs)} configs "
            f"({n_ok} ok); {by_kind}; {self.seconds:.2f}s"
        )


def existing(paths: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """``(paths that exist, paths that do not)``; all missing raises ``FileNotFoundError``."""
    found: list[str] = []
    missing: list[str] = []
    for p in map(os.fspath, paths):
        (found if os.path.exists(p) else missing).append(p)
    if missing and not found:
        raise FileNotFoundError(f"no such run directory: {', '.join(missing)}")
    return found, missing


def find_results(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Every ``results.json`` under ``paths`` (a path may also be a results.json itself).

    Hidden directories (``.hydra``, ``.submitit``) are not entered.
    """
    stack: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isfile(p):
            if os.path.basename(p) == RESULTS:
                yield p
            continue
        if not os.path.isdir(p):
            raise FileNotFoundError(f"no such run directory: {p}")
        stack.append(p)
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.name == RESULTS:
                    if e.is_file():
                        yield e.path
                elif not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
                    stack.append(e.path)


def read_one(path: str) -> tuple[dict | None, tuple[str, str, str] | None]:
    """``(record, None)`` for a usable results.json, ``(None, issue)`` otherwise."""
    run_dir = os.path.dirname(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        mtime = os.stat(path).st_mtime
    except OSError as e:
        return None, (run_dir, "corrupt", f"unreadable results.json: {e}")
    try:
        rec = json.loads(raw)
    except ValueError as e:
        what = "empty" if not raw.strip() else f"invalid JSON ({e})"
        return None, (run_dir, "corrupt", f"results.json is {what}")
    if not isinstance(rec, dict):
        return None, (
            run_dir,
            "corrupt",
            f"results.json holds a {type(rec).__name__}, not an object",
        )
    missing = [k for k in REQUIRED if rec.get(k) is None]
    if missing:
        return None, (run_dir, "corrupt", f"results.json lacks {', '.join(missing)}")
    rec["path"] = run_dir
    rec["mtime"] = mtime
    return rec, None


def _coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Known columns to their types; anything unparseable becomes null, not an exception."""
    for c in NUMERIC:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in STRINGS:
        if c in df:
            df[c] = df[c].map(lambda v: None if v is None or v != v else str(v)).astype(object)
    if "symmetric" in df:
        df["symmetric"] = (
            df["symmetric"].map(lambda v: None if v is None or v != v else bool(v)).astype(object)
        )
    for c in df.columns:  # extra keys: keep scalars, stringify mixed / nested values
        if c in NUMERIC or c in STRINGS or c in ("symmetric", "mtime"):
            continue
        col = df[c]
        if col.dtype == object:
            kinds = {type(v) for v in col if v is not None and v == v}
            if len(kinds) > 1 or kinds & {dict, list}:
                df[c] = col.map(lambda v: None if v is None else json.dumps(v, default=str))
    return df


def _check_values(rec: dict, issues: list[tuple[str, str, str]]) -> None:
    """Top-1 values that are not numbers in [0, 100] (NaN, inf, strings) -> null + warning."""
    for c in TOP1:
        v = rec.get(c)
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not (ok and 0 <= v <= 100):
            issues.append(
                (rec["path"], "warning", f"{c}={v!r} is not a top-1 in [0, 100]; ignored")
            )
            rec[c] = None


def dedupe(df: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
    """One row per ``config_hash``: the newest ``ok`` run, else the newest attempt."""
    if df.empty:
        return df, []
    key = pd.DataFrame(
        {
            "ok": (df["status"] == "ok").astype(int),
            "finished": df["finished_at"].fillna("") if "finished_at" in df else "",
            "started": df["started_at"].fillna("") if "started_at" in df else "",
            "mtime": df["mtime"],
        },
        index=df.index,
    )
    order = key.sort_values(["ok", "finished", "started", "mtime"], kind="stable").index
    s = df.loc[order]
    last = ~s.duplicated("config_hash", keep="last")
    kept = s[last]
    dropped = s[~last]
    winner = dict(zip(kept["config_hash"], kept["path"]))
    issues = [
        (p, "duplicate", f"re-run of config {h} ({st}); kept {winner[h]}")
        for p, h, st in zip(dropped["path"], dropped["config_hash"], dropped["status"])
    ]
    counts = df["config_hash"].value_counts()
    kept = kept.assign(n_attempts=kept["config_hash"].map(counts).astype(int))
    return kept.sort_values("path", kind="stable").reset_index(drop=True), issues


def _ago(now: float, beat: object) -> str:
    try:
        return f"{(now - float(beat)) / 60:.0f} min ago"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "an unknown time"


def read_curves(
    run_dirs: Iterable[str],
    hashes: Iterable[str],
    progress: Callable[[Iterable], Iterable] | None = None,
) -> tuple[pd.DataFrame, list]:
    """Long table of ``metrics.jsonl`` rows for the given runs (corrupt lines reported)."""
    rows: list[dict] = []
    issues: list[tuple[str, str, str]] = []
    pairs: Iterable = zip(run_dirs, hashes)
    for d, h in progress(pairs) if progress is not None else pairs:
        p = os.path.join(d, METRICS)
        try:
            with open(p, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            continue
        except OSError as e:
            issues.append((d, "warning", f"unreadable metrics.jsonl: {e}"))
            continue
        bad = 0
        epochs: list[float] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(r, dict) or "epoch" not in r:
                bad += 1
                continue
            r["config_hash"] = h
            r["run_dir"] = d
            rows.append(r)
            epochs.append(r["epoch"])
        if bad:
            issues.append((d, "warning", f"metrics.jsonl: {bad} corrupt line(s) skipped"))
        doubled = len(epochs) - len(set(epochs))
        if doubled:
            issues.append(
                (
                    d,
                    "warning",
                    f"metrics.jsonl: {doubled} epoch row(s) repeated (two launches at once, or "
                    "an earlier attempt's rows); the curve is not this run's history",
                )
            )
    curves = pd.DataFrame(rows)
    if not curves.empty:
        for c in curves.columns:
            if c not in ("config_hash", "run_dir"):
                curves[c] = pd.to_numeric(curves[c], errors="coerce")
    return curves, issues


def collect(
    paths: Iterable[str | os.PathLike],
    *,
    curves: bool = True,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Collected:
    """Read every results.json under ``paths``; see the module docstring.

    A path that does not exist is reported as a ``missing`` issue (and warned about); only when
    none exists is it an error (``FileNotFoundError``). ``progress`` wraps the file iterator
    (e.g. a progress bar).
    """
    t0 = time.perf_counter()
    records: list[dict] = []
    issues: list[tuple[str, str, str]] = []
    found, missing = existing(paths)
    for p in missing:
        warnings.warn(f"no such run directory: {p} (skipped)", stacklevel=2)
        issues.append((p, "missing", "no such run directory"))
    n = 0
    files: Iterable[str] = find_results(found)
    if progress is not None:
        files = progress(files)
    for path in files:
        n += 1
        rec, issue = read_one(path)
        if issue:
            issues.append(issue)
        else:
            assert rec is not None
            _check_values(rec, issues)
            records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=list(COLUMNS))
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    df = _coerce(df)
    if len(df):
        unknown = ~df["status"].isin(STATUSES)
        for p, st in zip(df.loc[unknown, "path"], df.loc[unknown, "status"]):
            issues.append((p, "corrupt", f"unknown status {st!r} (expected {', '.join(STATUSES)})"))
        df = df[~unknown]
    df, dup = dedupe(df)
    issues += dup
    now = time.time()
    for rec in df.to_dict("records"):
        p, st, why = rec["path"], effective_status(rec, now), rec["reason"]
        if st == "failed":
            issues.append((p, "failed", why or "no reason recorded"))
        elif st == "lost":
            issues.append(
                (p, "lost", f"status running but no heartbeat since {_ago(now, rec['heartbeat'])}")
            )
        elif st in ("running", "preempted", "interrupted"):
            issues.append((p, st, why or "no final results yet"))
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    cur = pd.DataFrame()
    if curves and len(df):
        cur, cissues = read_curves(df["path"], df["config_hash"], progress)
        issues += cissues
    issues_df = pd.DataFrame(issues, columns=list(ISSUE_COLUMNS))
    return Collected(df, issues_df, cur, n_files=n, seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------- liveness


def lost_after(record: dict) -> float:
    """Seconds without a sign of life after which a ``running`` record counts as lost.

    3 x ``heartbeat_interval_s`` when the record has one, never less than 5 minutes. Records
    without a heartbeat (older runs) only show life per epoch, so for them the bound also
    covers 3 x their last ``epoch_seconds`` when known (``last_epoch_seconds``).
    """
    bound = LOST_MIN_S
    for key in ("heartbeat_interval_s", "last_epoch_seconds"):
        v = record.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            bound = max(bound, LOST_INTERVALS * float(v))
    return bound


def last_sign_of_life(record: dict) -> float | None:
    """Unix time of the newest heartbeat, else of the newest results.json / metrics.jsonl write."""
    hb = record.get("heartbeat")
    if isinstance(hb, (int, float)) and not isinstance(hb, bool) and math.isfinite(hb):
        return float(hb)
    times = [
        float(t)
        for t in (record.get("mtime"), record.get("metrics_mtime"))
        if isinstance(t, (int, float)) and t == t
    ]
    run_dir = record.get("path") or record.get("run_dir")
    if run_dir and "metrics_mtime" not in record:
        for name in (RESULTS, METRICS):
            try:
                times.append(os.stat(os.path.join(str(run_dir), name)).st_mtime)
            except OSError:
                pass
    return max(times) if times else None


def effective_status(record: dict, now: float) -> str:
    """The status to show for a results.json record at unix time ``now``.

    ``ok`` / ``failed`` / ``preempted`` as recorded. ``running`` becomes ``lost`` when the
    run's last sign of life (its ``heartbeat``, a unix time, else the mtime of results.json /
    metrics.jsonl) is older than ``lost_after(record)``: 3 x ``heartbeat_interval_s``, at least
    5 minutes. A running record with no sign of life at all stays ``running``.
    """
    status = str(record.get("status") or "unknown")
    if status != "running":
        return status
    last = last_sign_of_life(record)
    if last is None:
        return "running"
    return "lost" if now - last > lost_after(record) else "running"


def left_out(issues: pd.DataFrame) -> str:
    """The markdown lines under a sweep's table that name the runs it left out (every issue but
    superseded duplicates); empty when there are none."""
    shown = issues[issues["kind"] != "duplicate"]
    if not len(shown):
        return ""
    return "\nRuns left out:\n\n" + "".join(
        f"- {r.kind}: {Path(r.path).name}: {r.detail}\n" for r in shown.itertuples()
    )


def write(c: Collected, out_dir: str | os.PathLike) -> list[Path]:
    """``runs.{parquet,csv}``, ``issues.csv`` and ``curves.{parquet,csv}`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("runs", c.runs), ("curves", c.curves)):
        if name == "curves" and df.empty:
            continue
        df.to_parquet(out / f"{name}.parquet", index=False)
        df.to_csv(out / f"{name}.csv", index=False)
        written += [out / f"{name}.parquet", out / f"{name}.csv"]
    c.issues.to_csv(out / "issues.csv", index=False)
    written.append(out / "issues.csv")
    return written


def load_runs(path: str | os.PathLike) -> pd.DataFrame:
    """A table written by ``write`` (parquet or CSV), or collected on the fly from a directory."""
    p = Path(path)
    if p.is_dir():
        if (p / "runs.parquet").is_file():
            return pd.read_parquet(p / "runs.parquet")
        return collect([p], curves=False).runs
    if p.suffix in (".parquet", ".csv"):
        try:
            return pd.read_parquet(p) if p.suffix == ".parquet" else _coerce(pd.read_csv(p))
        except Exception as e:  # garbage, truncated, or not a table at all
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{p}: not a readable runs table ({first})") from e
    raise ValueError(f"{p}: expected a runs.parquet / runs.csv file or a run directory")
