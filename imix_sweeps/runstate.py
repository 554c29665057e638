"""What keeps a run's record true on disk: atomic writes, the heartbeat, attempts, signals,
archived attempts and full disks.

- ``write_then_replace``: temp file + fsync + rename; the temp file is removed on any error.
- ``RunRecord``: the ``results.json`` of a run while it runs. Every write stamps ``heartbeat``
  (unix time) and the running ``wall_seconds`` (summed over all attempts, one entry per attempt
  in ``attempts``); a daemon thread rewrites it every ``heartbeat_interval_s`` seconds, so a run
  whose process died (``kill -9``, a lost node) shows up as ``lost`` in analysis
  (``analysis.collect.effective_status``). On a full disk the record is overwritten in place
  (no new blocks needed) so that the failure and its reason still land.
- ``StopSignals``: SIGTERM, SIGINT and SIGUSR1 stop the run at the next step boundary with a
  checkpoint, and record ``failed`` / ``interrupted`` / ``preempted`` with the reason. Only
  signals that nobody else handles are taken (submitit's own handlers stay in place).
- ``archive_attempt``: a fresh start moves an earlier attempt's files to ``attempts/<n>/``.
- ``check_free_space`` / ``describe_os_error``: a full disk is said plainly, naming the path.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import IO, Any

log = logging.getLogger("imix_sweeps.runstate")

RESULTS = "results.json"
ATTEMPTS = "attempts"
# Below this much free space a run does not start (a checkpoint of the small models is ~1 MB;
# IMIX_MIN_FREE_MB overrides it).
MIN_FREE_BYTES = 2 * 2**20


# ----------------------------------------------------------------------------- files
def write_then_replace(path: Path, write: Callable[[IO[Any]], Any], mode: str) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, fsync, rename over
    ``path``. On any error (a full disk, a signal) the temporary file is removed and ``path``
    keeps its previous content."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        # torch.save reports a short write as a RuntimeError ("unexpected pos"): name it
        full = not isinstance(e, OSError) and isinstance(e, Exception) and _nearly_full(tmp)
        try:
            tmp.unlink()
        except OSError:
            pass
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


def _nearly_full(path: Path) -> bool:
    free = free_bytes(path.parent)
    return free is not None and free < 2**20


def overwrite_in_place(path: Path, text: str) -> None:
    """Overwrite ``path`` without allocating: the new text padded with blanks to the old size
    (JSON allows trailing whitespace). For a full disk, where a temp file cannot be written."""
    data = text.encode()
    size = path.stat().st_size
    if len(data) > size:
        raise OSError(errno.ENOSPC, "no room to overwrite in place", str(path))
    with open(path, "r+b") as f:
        f.write(data + b" " * (size - len(data)))
        f.flush()
        os.fsync(f.fileno())


def archive_attempt(run_dir: Path, names: Iterable[str]) -> Path | None:
    """Move the existing files ``names`` of ``run_dir`` to ``run_dir/attempts/<n>/`` (the next
    free ``n``); None when there was nothing to move (empty files are just removed)."""
    run_dir = Path(run_dir)
    present = []
    for name in names:
        p = run_dir / name
        if p.is_file() and p.stat().st_size == 0:
            p.unlink()
        elif p.exists():
            present.append(name)
    if not present:
        return None
    root = run_dir / ATTEMPTS
    root.mkdir(exist_ok=True)
    n = 1 + max((int(d.name) for d in root.iterdir() if d.name.isdigit()), default=0)
    while True:
        dest = root / str(n)
        try:
            dest.mkdir()
            break
        except FileExistsError:
            n += 1
    for name in present:
        os.replace(run_dir / name, dest / name)
    return dest


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Remove the ``.<name>.tmp<pid>`` files a killed writer left behind. Call it holding the
    run's lock: no other process writes in the run dir then."""
    removed = []
    for p in Path(run_dir).glob(".*.tmp*"):
        if p.is_file():
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    if removed:
        log.warning("%s: removed temporary files of an interrupted write: %s", run_dir, removed)
    return removed


# ----------------------------------------------------------------------------- disk space
class DiskFullError(OSError):
    """Not enough free space to run (or a write failed with ENOSPC), naming the path."""


def min_free_bytes() -> int:
    env = os.environ.get("IMIX_MIN_FREE_MB")
    return int(float(env) * 2**20) if env else MIN_FREE_BYTES


def free_bytes(path: Path) -> int | None:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def check_free_space(path: Path, need: int | None = None) -> None:
    """Raise ``DiskFullError`` when the file system of ``path`` has less than ``need`` bytes."""
    need = min_free_bytes() if need is None else need
    free = free_bytes(path)
    if free is not None and free < need:
        raise DiskFullError(
            errno.ENOSPC,
            f"disk full: {free / 2**20:.1f} MB free on the file system of {path} (a run needs at "
            f"least {need / 2**20:.1f} MB); free some space and re-launch (the last good "
            "checkpoint, if any, is kept)",
            str(path),
        )


def describe_os_error(e: BaseException, run_dir: Path) -> str:
    """A one-line reason; a full disk is named as such with the path it hit."""
    if isinstance(e, DiskFullError):
        return e.strerror or str(e)
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = e.filename or run_dir
        free = free_bytes(Path(run_dir))
        left = f"; {free / 2**20:.1f} MB free" if free is not None else ""
        return (
            f"disk full: no space left on device writing {where}{left}. The last good checkpoint "
            "is kept; free some space and re-launch to resume"
        )
    return f"{type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- the record
def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def previous_attempts(previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The attempts of an earlier record; a record that still says ``running`` belongs to a
    process that is gone (we hold the run's lock), so its last attempt is marked ``lost``."""
    if not previous:
        return []
    attempts = previous.get("attempts")
    if not isinstance(attempts, list):  # a record written before attempts were kept
        attempts = [
            {
                "started_at": previous.get("started_at"),
                "wall_seconds": float(previous.get("wall_seconds") or 0.0),
                "status": previous.get("status"),
            }
        ]
    out = [dict(a) for a in attempts if isinstance(a, dict)]
    if out and out[-1].get("status") == "running":
        out[-1]["status"] = "lost"
        out[-1]["reason"] = "the process ended without recording (killed, or the node was lost)"
    return out


class RunRecord:
    """``results.json`` of the running attempt; written by rank 0 only (``enabled``)."""

    def __init__(
        self,
        run_dir: Path,
        data: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        heartbeat_interval_s: float = 60.0,
        enabled: bool = True,
    ) -> None:
        self.path = Path(run_dir) / RESULTS
        self.data = data
        self.enabled = enabled
        self.interval = float(heartbeat_interval_s)
        self.t_start = time.time()
        self.attempts = previous_attempts(previous)
        self.prior_wall = sum(float(a.get("wall_seconds") or 0.0) for a in self.attempts)
        self.attempt: dict[str, Any] = {
            "started_at": _now_iso(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "status": "running",
            "wall_seconds": 0.0,
        }
        self.data.update(heartbeat_interval_s=self.interval)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def update(self, **kw: Any) -> None:
        with self._lock:
            self.data.update(kw)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.time()
            wall = now - self.t_start
            self.attempt.update(
                status=self.data.get("status"),
                wall_seconds=round(wall, 2),
            )
            if self.data.get("status") != "running":
                self.attempt.update(ended_at=_now_iso(), reason=self.data.get("reason"))
            self.data.update(
                heartbeat=round(now, 3),
                wall_seconds=round(self.prior_wall + wall, 2),
                attempts=[*self.attempts, dict(self.attempt)],
            )
            return dict(self.data)

    def write(self) -> dict[str, Any]:
        """Write the record now (status, heartbeat, wall time); returns what was written."""
        with self._lock:
            rec = self.snapshot()
            if self.enabled:
                write_record(self.path, rec)
            return rec

    def beat(self, *_: Any) -> None:
        """Refresh the heartbeat; a failed write is logged once, never raised."""
        try:
            self.write()
        except OSError as e:
            if not self._warned:
                log.warning("could not refresh %s: %s", self.path, e)
                self._warned = True

    def start_heartbeat(self) -> None:
        if not self.enabled or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.beat()

        self._thread = threading.Thread(target=loop, name="results-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def record_text(rec: dict[str, Any], *, compact: bool = False) -> str:
    if compact:
        return json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n"
    return json.dumps(rec, indent=1, sort_keys=True) + "\n"


def write_record(path: Path, rec: dict[str, Any]) -> None:
    """Atomic write; on a full disk, overwrite the old record in place (compact form)."""
    try:
        write_then_replace(path, lambda f: f.write(record_text(rec)), "w")
    except OSError as e:
        if e.errno != errno.ENOSPC or not path.exists():
            raise
        slim = dict(rec)
        if len(slim.get("attempts") or []) > 1:
            slim["attempts"] = slim["attempts"][-1:]
        overwrite_in_place(path, record_text(slim, compact=True))


# ----------------------------------------------------------------------------- signals
SIGNAL_STATUS = {"SIGTERM": "failed", "SIGINT": "interrupted", "SIGUSR1": "preempted"}


class RunSignalled(BaseException):
    """A stop signal arrived outside the training loop (or a second time): the run ends now."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name} received")


class StopSignals:
    """SIGTERM / SIGINT / SIGUSR1 -> a stop at the next step boundary (while ``graceful``), else
    ``RunSignalled`` at once. ``caught`` is the name of the first signal received."""

    def __init__(self, names: Iterable[str] = tuple(SIGNAL_STATUS)) -> None:
        self.names = tuple(names)
        self.caught: str | None = None
        self.graceful = False
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.names:
            sig = getattr(signal, name)
            current = signal.getsignal(sig)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                self._previous[sig] = current
                signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, prev in self._previous.items():
            try:
                signal.signal(sig, prev)
            except (ValueError, OSError):
                pass
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = self.caught is None
        if first:
            self.caught = name
        if first and self.graceful:
            log.warning("caught %s: checkpointing at the next step boundary", name)
            return
        raise RunSignalled(name)

    def status(self, default: str = "failed") -> str:
        return SIGNAL_STATUS.get(self.caught or "", default)
