"""A seeded fault campaign against a small sweep on the embedded digits data.

    python -m imix_sweeps.faults                       # 10 trials, seed 0
    python -m imix_sweeps.faults --trials 40 --seed 3 --workdir /tmp/faults --keep

Each run is launched as a user would (``python -m imix_sweeps hydra.run.dir=...``). First every
config of the sweep runs once undisturbed (the reference). Then each trial takes one config in
a fresh run dir and does one of these (every kind once per round of 8 trials, seeded order):

- ``kill9``: ``kill -9`` at a random time (1 to 3 times in a row), then re-launch;
- ``sigterm`` / ``sigint`` / ``sigusr1``: the signal at a random time; the record must say
  ``failed`` / ``interrupted`` / ``preempted`` (never ``running``), then re-launch;
- ``concurrent``: two launches of the same run dir at once (one must skip it);
- ``torn_metrics``: ``kill -9``, then a half-written last line appended to ``metrics.jsonl``;
- ``garbage_checkpoint``: ``kill -9``, then random bytes in ``checkpoint.pt``: the re-launch must
  fail with a clear record; the checkpoint is moved away as the message says, and re-launched;
- ``garbage_results``: ``kill -9``, then random bytes in ``results.json``.

Each trial re-launches until the run is ``ok`` and compares it with the reference: every epoch's
loss and the final top-1 must be identical (bit-exact), ``metrics.jsonl`` must hold each epoch
once. The campaign prints: trials, runs resumed bit-exact, metric rows lost, rows doubled,
records stuck in ``running`` (after a process that was not ``kill -9``-ed ended, or at the end),
temporary files left behind; it exits 1 if any of these is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KINDS = (
    "kill9",
    "sigterm",
    "sigint",
    "sigusr1",
    "concurrent",
    "torn_metrics",
    "garbage_checkpoint",
    "garbage_results",
)
EPOCHS = 8
BASE = [
    f"train.epochs={EPOCHS}",
    "train.batch_size=64",
    "backbone.net.width=8",
    "method.model.dim=16",
    "train.heartbeat_interval_s=1",
]
SWEEP = (["mix=imixup", "seed=0"], ["mix=none", "seed=1"])


def launch(run_dir: Path, overrides: list[str], cwd: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HYDRA_FULL_ERROR": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "imix_sweeps", f"hydra.run.dir={run_dir}", *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(p: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out or ""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def metric_rows(run_dir: Path) -> list[dict]:
    rows = []
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return rows
    for ln in lines:
        try:
            rows.append(json.loads(ln))
        except ValueError:
            rows.append({"epoch": None})
    return rows


def wait_started(run_dir: Path, p: subprocess.Popen, timeout: float = 300) -> bool:
    """Until results.json says running (the run holds its dir) or the process ended."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and p.poll() is None:
        rec = read_json(run_dir / "results.json")
        if isinstance(rec, dict) and rec.get("status") == "running":
            return True
        time.sleep(0.05)
    return False


def wait_epochs(run_dir: Path, p: subprocess.Popen, n: int, timeout: float = 300) -> bool:
    """Until ``metrics.jsonl`` holds ``n`` rows of this launch's training (or it ended)."""
    if not wait_started(run_dir, p, timeout):
        return False
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and p.poll() is None:
        if n == 0 or len(metric_rows(run_dir)) >= n:
            return True
        time.sleep(0.05)
    return False


@dataclass
class Tally:
    trials: int = 0
    kinds: Counter = field(default_factory=Counter)
    finished: int = 0
    exact: int = 0
    resumed: int = 0
    resumed_exact: int = 0
    rows_lost: int = 0
    rows_doubled: int = 0
    stuck_running: int = 0
    temp_left: int = 0
    skipped_concurrent: int = 0
    landed_late: int = 0
    problems: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return (
            self.finished == self.trials
            and self.exact == self.finished
            and self.rows_lost == 0
            and self.rows_doubled == 0
            and self.stuck_running == 0
            and self.temp_left == 0
        )


class Campaign:
    def __init__(self, workdir: Path, seed: int, signal_window_s: float = 3.0) -> None:
        self.workdir = workdir
        self.resumed = False
        self.rng = random.Random(seed)
        self.window = signal_window_s
        self.epoch_s = 0.5  # measured on the reference runs
        self.order: list[str] = list(KINDS)
        self.ref: dict[int, tuple[list[dict], dict]] = {}
        self.tally = Tally()

    def overrides(self, i: int) -> list[str]:
        return [*BASE, *SWEEP[i]]

    def reference(self) -> None:
        for i in range(len(SWEEP)):
            d = self.workdir / f"reference_{i}"
            code, err = finish(launch(d, self.overrides(i), self.workdir))
            rec = read_json(d / "results.json")
            if code != 0 or not rec or rec.get("status") != "ok":
                raise SystemExit(f"reference run {i} failed ({code}):\n{err[-2000:]}")
            self.ref[i] = (metric_rows(d), rec)
        secs = [r.get("epoch_seconds") or 0.0 for rows, _ in self.ref.values() for r in rows]
        self.epoch_s = max(sum(secs) / max(len(secs), 1), 0.05)

    # ------------------------------------------------------------------ faults
    def interrupt(self, d: Path, i: int, sig: signal.Signals, last_epoch: int = EPOCHS) -> None:
        """Launch, wait until it holds its dir, send ``sig`` at a random time, wait for the end.

        The time: during start-up (up to ``window`` s after the run took its dir), or inside
        epoch ``k + 1`` for a random ``k`` in ``1..last_epoch - 1`` (up to one epoch's time
        after epoch ``k``'s metrics line)."""
        k = self.rng.randint(0, last_epoch - 1)
        delay = self.rng.uniform(0.0, self.window if k == 0 else self.epoch_s)
        p = launch(d, self.overrides(i), self.workdir)
        if wait_epochs(d, p, k):
            time.sleep(delay)
        if p.poll() is None:
            p.send_signal(sig)
        finish(p)
        if sig != signal.SIGKILL:
            rec = read_json(d / "results.json")
            if isinstance(rec, dict) and rec.get("status") == "running":
                self.tally.stuck_running += 1
                self.tally.problems.append(f"{d.name}: still running after {sig.name}")

    def run_to_completion(self, d: Path, i: int, tries: int = 4) -> dict | None:
        self.resumed = False
        for _ in range(tries):
            had_checkpoint = (d / "checkpoint.pt").exists()
            code, err = finish(launch(d, self.overrides(i), self.workdir))
            rec = read_json(d / "results.json")
            if isinstance(rec, dict) and rec.get("status") == "ok":
                self.resumed = had_checkpoint and "resumed from" in err
                return rec
            if isinstance(rec, dict) and rec.get("status") == "running":
                self.tally.stuck_running += 1
                self.tally.problems.append(f"{d.name}: running after a launch ended ({code})")
            if "unreadable" in err and (d / "checkpoint.pt").exists():
                # what the message advises: move the bad checkpoint away and re-launch
                (d / "checkpoint.pt").rename(d / "checkpoint.pt.bad")
        self.tally.problems.append(f"{d.name}: not ok after {tries} launches")
        return None

    def trial(self, k: int) -> None:
        if k % len(KINDS) == 0:  # every fault kind once per round, in a seeded order
            self.order = self.rng.sample(KINDS, len(KINDS))
        kind = self.order[k % len(KINDS)]
        i = self.rng.randrange(len(SWEEP))
        d = self.workdir / f"trial_{k:03d}_{kind}"
        t = self.tally
        t.trials += 1
        t.kinds[kind] += 1
        if kind == "kill9":
            for _ in range(self.rng.randint(1, 3)):
                self.interrupt(d, i, signal.SIGKILL)
        elif kind in ("sigterm", "sigint", "sigusr1"):
            self.interrupt(d, i, getattr(signal, kind.upper()))
        elif kind == "concurrent":
            a = launch(d, self.overrides(i), self.workdir)
            b = launch(d, self.overrides(i), self.workdir)
            (_, ea), (_, eb) = finish(a), finish(b)
            if "in use by" in ea + eb:
                t.skipped_concurrent += 1
        else:
            self.interrupt(d, i, signal.SIGKILL, last_epoch=EPOCHS - 1)
            rec = read_json(d / "results.json")
            if isinstance(rec, dict) and rec.get("status") == "ok":
                # the kill came after the run had finished: a finished run is not corrupted
                # (its files were written completely); the trial counts as landed late
                t.landed_late += 1
                self.check(d, i, rec)
                return
            if kind == "torn_metrics":
                with open(d / "metrics.jsonl", "a") as f:
                    f.write('{"epoch": 99, "step": 12, "lo')
            elif kind == "garbage_checkpoint" and (d / "checkpoint.pt").exists():
                (d / "checkpoint.pt").write_bytes(self.rng.randbytes(4096))
            elif kind == "garbage_results":
                (d / "results.json").write_bytes(self.rng.randbytes(300))
        rec = self.run_to_completion(d, i)
        self.check(d, i, rec)

    def check(self, d: Path, i: int, rec: dict | None) -> None:
        t = self.tally
        temps = [p.name for p in d.glob(".*.tmp*")]
        t.temp_left += len(temps)
        if temps:
            t.problems.append(f"{d.name}: temporary files left: {temps}")
        if rec is None:
            return
        t.finished += 1
        ref_rows, ref_rec = self.ref[i]
        rows = metric_rows(d)
        epochs = [r.get("epoch") for r in rows]
        t.rows_doubled += len(epochs) - len(set(epochs))
        t.rows_lost += len({r["epoch"] for r in ref_rows} - set(epochs))
        same = [r.get("loss") for r in rows] == [r["loss"] for r in ref_rows] and all(
            rec.get(key) == ref_rec.get(key) for key in ("linear_top1", "knn_top1", "final_loss")
        )
        resumed = self.resumed
        t.exact += same
        t.resumed += resumed
        t.resumed_exact += resumed and same
        if not same:
            t.problems.append(f"{d.name}: differs from the reference")

    def report(self) -> str:
        t = self.tally
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(t.kinds.items()))
        lines = [
            f"trials: {t.trials} ({kinds})",
            f"runs finished ok: {t.finished} of {t.trials}; bit-exact with the reference: {t.exact}",
            f"runs resumed bit-exact: {t.resumed_exact} of {t.resumed} resumed from a checkpoint",
            f"metric rows lost: {t.rows_lost}",
            f"rows doubled: {t.rows_doubled}",
            f"records stuck in running: {t.stuck_running}",
            f"temporary files left: {t.temp_left}",
            f"concurrent launches that skipped a run in use: {t.skipped_concurrent} of "
            f"{t.kinds['concurrent']}",
            f"corruptions not applied (the kill came after the run had finished): {t.landed_late}",
        ]
        lines += [f"problem: {p}" for p in t.problems]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m imix_sweeps.faults", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--trials", type=int, default=10, help="number of faults to inject (10)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fault draws (0)")
    ap.add_argument("--workdir", help="where the run dirs go (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the run dirs afterwards")
    ap.add_argument(
        "--window",
        type=float,
        default=3.0,
        help="a fault during start-up lands up to this many s after the run took its dir (3)",
    )
    a = ap.parse_args(argv)
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="imix-faults-")).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    c = Campaign(workdir, a.seed, a.window)
    t0 = time.time()
    print(f"fault campaign: seed {a.seed}, {a.trials} trials in {workdir}", flush=True)
    try:
        c.reference()
        for k in range(a.trials):
            c.trial(k)
            print(f"  trial {k + 1}/{a.trials} done ({time.time() - t0:.0f}s)", flush=True)
    finally:
        print(c.report())
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if c.tally.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
