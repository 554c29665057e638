"""Hydra callbacks that print a table of the sweep's own runs when a multirun ends.

``SweepTable`` is wired into every sweep by ``conf/config.yaml`` (``hydra.callbacks.summary``):
at the end of ``imix-sweeps --multirun ...`` it collects the sweep dir and prints
``imix-analysis table`` over the sweep's own swept axes (the fields that vary: ``mix`` as the
columns with Δ against ``mix=none``, the others as rows; seeds pooled), for every top-1 the
runs recorded, and writes it to ``<sweep dir>/summary.md``.

``SummaryTable`` is the demo's layout (``conf/sweep/demo.yaml`` puts it in the same slot)::

    hydra:
      callbacks:
        summary:
          _target_: analysis.hydra_callback.SummaryTable

At the end of ``imix-sweeps --multirun ...`` it collects the ``results.json`` files under
``hydra.sweep.dir``, prints linear / few-shot / kNN top-1 (mean ± std over seeds, n) with
rows = method and the i-Mix column beside each baseline (plus Δ), and writes the same table
to ``<sweep dir>/summary.md``. A problem in the analysis is logged, never raised: the sweep's
runs are already on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class _TableAtEnd(Callback):
    """Renders a table of the sweep's runs when the multirun ends, prints it and writes it to
    ``<sweep dir>/<filename>``; a failure is logged, never raised (the table is a convenience)."""

    filename: str

    def render(self, sweep_dir: Path) -> str:
        raise NotImplementedError

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            text = self.render(sweep_dir)
            (sweep_dir / self.filename).write_text(text)
        except Exception as e:
            log.error(
                "%s for %s failed: %s: %s", type(self).__name__, sweep_dir, type(e).__name__, e
            )
            return
        print("\n" + text, flush=True)
        log.info("wrote %s", sweep_dir / self.filename)


class SweepTable(_TableAtEnd):
    """Mean ± std (n) per cell of the swept axes, Δ against mix=none; see the module doc."""

    def __init__(self, filename: str = "summary.md", metrics: list[str] | None = None):
        self.filename = filename
        self.metrics = list(metrics or ("linear_top1", "fewshot_top1", "knn_top1"))

    def render(self, sweep_dir: Path) -> str:
        from analysis.collect import collect, left_out
        from analysis.grid import grid_table, sweep_axes

        c = collect([sweep_dir], curves=False)
        text = f"## Sweep summary: {sweep_dir}\n\n"
        runs = c.runs
        if runs.empty:
            return text + "No runs found.\n" + left_out(c.issues)
        rows, cols = sweep_axes(runs)
        parts = []
        for m in self.metrics:
            if m not in runs or not runs[m].notna().any():
                continue
            parts.append(grid_table(runs, rows, cols, metric=m).markdown())
        if not parts:  # nothing finished: still show where each cell stands
            parts.append(grid_table(runs, rows, cols, metric=self.metrics[0]).markdown())
        return text + "\n".join(parts) + left_out(c.issues)


class SummaryTable(_TableAtEnd):
    def __init__(self, baseline: str = "none", mixed: str = "imixup", filename: str = "summary.md"):
        self.baseline = baseline
        self.mixed = mixed
        self.filename = filename

    def render(self, sweep_dir: Path) -> str:
        from analysis.collect import collect, left_out
        from analysis.tables import demo_table

        c = collect([sweep_dir], curves=False)
        text = f"## Sweep summary: {sweep_dir}\n\n" + demo_table(
            c.runs, baseline=self.baseline, mixed=self.mixed
        )
        return text + left_out(c.issues)
