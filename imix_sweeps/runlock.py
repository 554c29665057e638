"""One process owns a run directory: an advisory ``fcntl.flock`` on ``<run dir>/.run.lock``.

The lock is held for the run's whole lifetime by the process that writes the run dir (rank 0
under DDP). The lock file records who holds it (``host``, ``pid``, ``slurm_job_id``,
``since``), so that a second launch of the same run can say who has it, and so that a stale
lock can be taken over:

- the kernel drops a ``flock`` when its holder dies, so a run killed on this machine (even
  with ``kill -9``) leaves a lock that the next launch simply acquires;
- a lock that is still held although its holder is gone (a dead pid on this host whose
  descriptor lives on in an orphaned child, or a network file system that keeps the lock
  of a crashed node) is taken over when the holder is a dead pid on this host, a SLURM job
  that ``squeue`` no longer lists as running, or the same SLURM job id as ours (a requeued
  job taking its own run back). Taking over replaces the lock file by a new one (a new
  inode), so the old holder's lock no longer guards anything.

When neither the pid nor SLURM can be checked (another host, no ``squeue``), the lock is
respected: the launch skips the run and says who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("imix_sweeps.runlock")

LOCK = ".run.lock"


class RunLocked(RuntimeError):
    """Another live process holds the run directory."""

    def __init__(self, run_dir: Path, holder: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.holder = holder
        super().__init__(f"{run_dir} is in use by {describe(holder)}; skipped")


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host-a (SLURM job 456) since 2026-...`` for a lock file's content."""
    if not holder:
        return "another process (lock file without details)"
    text = f"pid {holder.get('pid')} on {holder.get('host')}"
    if holder.get("slurm_job_id"):
        text += f" (SLURM job {holder['slurm_job_id']})"
    if holder.get("since"):
        text += f" since {holder['since']}"
    return text


def slurm_job_id() -> str | None:
    """This process's SLURM job id (array jobs: ``<array>_<task>``), or None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def slurm_job_running(job_id: str, *, timeout_s: float = 10.0) -> bool | None:
    """True/False when ``squeue`` answers for ``job_id``, None when it cannot be asked."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", str(job_id), "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        # squeue exits non-zero for a job id it no longer knows, and when the controller is down
        return False if "Invalid job id" in out.stderr else None
    states = {s.strip() for s in out.stdout.split()}
    return bool(states & {"RUNNING", "COMPLETING", "CONFIGURING", "PENDING", "REQUEUED"})


def stale_reason(holder: dict[str, Any], *, host: str | None = None) -> str | None:
    """Why the lock recorded in ``holder`` can be taken over, or None if it must be respected."""
    host = host or socket.gethostname()
    mine = slurm_job_id()
    job = holder.get("slurm_job_id")
    if job and mine and str(job) == mine:
        return f"it belongs to this SLURM job ({job}), requeued"
    if holder.get("host") == host and isinstance(holder.get("pid"), int):
        if holder["pid"] == os.getpid():
            return None  # this very process: never steal from ourselves
        if not pid_alive(holder["pid"]):
            return f"its process (pid {holder['pid']}) is gone"
        return None
    if job:
        running = slurm_job_running(str(job))
        if running is False:
            return f"SLURM job {job} is no longer running"
    return None


@dataclass
class RunLock:
    """``with RunLock(run_dir):`` holds the run dir, or raises ``RunLocked`` at once."""

    run_dir: Path
    fd: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / LOCK

    def read_holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _try_lock(self) -> bool:
        """Lock the file now at ``self.path`` (True), or find it held (False)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        try:  # the file may have been replaced (taken over) between open and flock
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return self._try_lock()
        self.fd = fd
        return True

    def acquire(self) -> RunLock:
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._try_lock():
                self._write_holder()
                return self
            holder = self.read_holder()
            why = stale_reason(holder)
            if why is None:
                raise RunLocked(Path(self.run_dir), holder)
            if self.read_holder() != holder:  # re-read: someone else took it over meanwhile
                continue
            log.warning("taking over the lock of %s: %s (%s)", self.run_dir, why, describe(holder))
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise RunLocked(Path(self.run_dir), self.read_holder())

    def _write_holder(self) -> None:
        assert self.fd is not None
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": slurm_job_id(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        data = (json.dumps(info) + "\n").encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError as e:  # a full disk: the lock itself holds; only the details are lost
            log.warning("could not record the lock holder in %s: %s", self.path, e)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
