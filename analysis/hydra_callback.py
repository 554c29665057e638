"""A Hydra callback that prints the demo table when a multirun ends.

Wire it into a sweep config::

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


class SummaryTable(Callback):
    def __init__(self, baseline: str = "none", mixed: str = "imixup", filename: str = "summary.md"):
        self.baseline = baseline
        self.mixed = mixed
        self.filename = filename

    def render(self, sweep_dir: Path) -> str:
        from analysis.collect import collect
        from analysis.tables import demo_table

        c = collect([sweep_dir], curves=False)
        text = f"## Sweep summary: {sweep_dir}\n\n" + demo_table(
            c.runs, baseline=self.baseline, mixed=self.mixed
        )
        shown = c.issues[c.issues["kind"] != "duplicate"]
        if len(shown):
            text += "\nRuns left out:\n\n" + "".join(
                f"- {r.kind}: {Path(r.path).name}: {r.detail}\n" for r in shown.itertuples()
            )
        return text

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            text = self.render(sweep_dir)
            (sweep_dir / self.filename).write_text(text)
        except Exception as e:  # the table is a convenience; never fail the sweep over it
            log.error("summary table for %s failed: %s: %s", sweep_dir, type(e).__name__, e)
            return
        print("\n" + text, flush=True)
        log.info("wrote %s", sweep_dir / self.filename)
