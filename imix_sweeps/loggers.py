"""Live experiment logging beside ``metrics.jsonl``: the ``logger`` config group.

    imix-sweeps logger=tensorboard        # <run dir>/tensorboard/ (tensorboard --logdir multirun/)
    imix-sweeps logger=csv                # <run dir>/progress.csv
    imix-sweeps logger=mlflow             # ./mlruns (a local file store) unless logger.sink.tracking_uri
    imix-sweeps logger=wandb              # offline in <run dir>/wandb unless logger.sink.mode=online

Every logger implements the small ``Logger`` protocol: the config once at the start, one row of
scalars per epoch (loss, lr, images/s, epoch seconds, kNN top-1 when the monitor ran), the final
metrics at the end, then ``close``. The training loop reaches it through one hook (``train``'s
``on_epoch``); ``run`` builds it from ``cfg.logger.sink`` (``_target_``), on the main rank only.
A logger that fails to start or to write is reported once and switched off: logging never
stops a run.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("imix_sweeps.loggers")


@runtime_checkable
class Logger(Protocol):
    def log_config(self, config: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_final(self, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists as their string)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    }


class NullLogger:
    """``logger=none``: nothing beyond metrics.jsonl."""

    def log_config(self, config: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_final(self, metrics: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Scalars under ``train/`` (per epoch, x = epoch) and ``final/``; the config as text."""

    def __init__(self, run_dir: str | Path, subdir: str = "tensorboard") -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run_dir) / subdir
        self.writer = SummaryWriter(log_dir=str(self.dir))

    def log_config(self, config: Mapping[str, Any]) -> None:
        lines = "\n".join(f"    {k}: {v}" for k, v in sorted(flatten(config).items()))
        self.writer.add_text("config", lines, 0)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in _scalars(metrics).items():
            self.writer.add_scalar(f"train/{k}", v, step)
        self.writer.flush()

    def log_final(self, metrics: Mapping[str, float]) -> None:
        for k, v in _scalars(metrics).items():
            self.writer.add_scalar(f"final/{k}", v, 0)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class CsvLogger:
    """One row per epoch in ``<run dir>/<filename>`` (columns grow as keys appear), the final
    metrics in ``final.csv`` and the flattened config in ``config.csv``."""

    def __init__(self, run_dir: str | Path, filename: str = "progress.csv") -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / filename
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():  # a resumed run appends to what it logged before
            with open(self.path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def _write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)

    def log_config(self, config: Mapping[str, Any]) -> None:
        flat = flatten(config)
        self._write(self.dir / "config.csv", [{"key": k, "value": v} for k, v in flat.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        epochs = {str(r.get("epoch")) for r in self.rows}
        row: dict[str, Any] = {"epoch": int(step)}
        row.update((k, v) for k, v in _scalars(metrics).items() if k != "epoch")
        if str(step) in epochs:  # re-logged after a resume: the newer row wins
            self.rows = [r for r in self.rows if str(r.get("epoch")) != str(step)]
        self.rows.append(row)
        self._write(self.path, self.rows)

    def log_final(self, metrics: Mapping[str, float]) -> None:
        self._write(self.dir / "final.csv", [_scalars(metrics)])

    def close(self) -> None:
        pass


class MlflowLogger:
    """An MLflow run per training run: params = the flattened config, metrics per epoch (step =
    epoch) and the final metrics. A local file store (``./mlruns``) unless ``tracking_uri``."""

    def __init__(
        self,
        run_dir: str | Path,
        tracking_uri: str | None = None,
        experiment: str = "imix-sweeps",
        run_name: str | None = None,
    ) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = (
            tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or Path("mlruns").resolve().as_uri()
        )
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps the file store behind this switch; a local store is the point here.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        name = run_name or Path(run_dir).name
        self.run_id = self.client.create_run(
            exp_id, run_name=name[:250], tags={"run_dir": str(Path(run_dir).resolve())}
        ).info.run_id
        self._mlflow = mlflow

    def log_config(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k[:250], str(v)[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in _scalars(metrics).items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_final(self, metrics: Mapping[str, float]) -> None:
        self.log_metrics({f"final_{k}": v for k, v in _scalars(metrics).items()}, 0)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbLogger:
    """A Weights & Biases run, offline in ``<run dir>/wandb`` unless ``mode=online``."""

    def __init__(
        self,
        run_dir: str | Path,
        project: str = "imix-sweeps",
        mode: str = "offline",
        entity: str | None = None,
    ) -> None:
        import wandb

        self.run = wandb.init(
            project=project,
            entity=entity,
            mode=mode,  # type: ignore[arg-type]
            dir=str(run_dir),
            name=Path(run_dir).name,
            reinit=True,
        )

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.run.config.update(flatten(config), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(_scalars(metrics), step=step)

    def log_final(self, metrics: Mapping[str, float]) -> None:
        for k, v in _scalars(metrics).items():
            self.run.summary[k] = v

    def close(self) -> None:
        self.run.finish()


class SafeLogger:
    """Wraps a logger: the first exception is logged and the logger is switched off."""

    def __init__(self, inner: Logger, name: str) -> None:
        self.inner: Logger | None = inner
        self.name = name

    def _call(self, fn: str, *args: Any) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, fn)(*args)
        except Exception as e:
            log.warning(
                "logger %s failed in %s (%s: %s); logging to it stops",
                self.name,
                fn,
                type(e).__name__,
                e,
            )
            self.inner = None

    def log_config(self, config: Mapping[str, Any]) -> None:
        self._call("log_config", config)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._call("log_metrics", metrics, step)

    def log_final(self, metrics: Mapping[str, float]) -> None:
        self._call("log_final", metrics)

    def close(self) -> None:
        self._call("close")


def build(sink: Any, run_dir: str | Path, name: str = "logger") -> Logger:
    """The logger a ``logger`` config describes (``sink``: ``{_target_: ..., ...}`` or None)."""
    if sink is None:
        return NullLogger()
    from hydra.utils import instantiate

    try:
        inner = instantiate(sink, run_dir=str(run_dir))
    except Exception as e:
        cause = e.__cause__ or e
        log.warning(
            "logger %s could not start (%s: %s); the run goes on without it",
            name,
            type(cause).__name__,
            cause,
        )
        return NullLogger()
    return SafeLogger(inner, name)
