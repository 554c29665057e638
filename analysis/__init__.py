"""Sweep outputs -> the papers' top-1 tables, with our numbers beside the reported ones.

Reads only ``results.json`` and ``metrics.jsonl`` files (never imports torch):

- ``collect``: run directories -> one tidy table, one row per run (de-duplicated re-runs),
  and ``effective_status`` (running / lost);
- ``grid``: tables of one's own sweeps (any fields as rows and columns, Δ vs ``mix=none``);
- ``status``: per sweep and cell, ok / running / failed / preempted / lost and the time left;
- ``reported``: the reported numbers (``results/reported/reported_top1.csv``) mapped onto
  the config tree's names, one table cell per row;
- ``tables``: a paper's table laid out as printed, each cell "ours | reported | delta",
  and the summary of verdicts;
- ``plots``: top-1 vs epochs, learning curves, i-Mix gain vs a factor;
- ``hydra_callback.SweepTable`` / ``SummaryTable``: a table printed at the end of a multirun.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REPORTED_CSV = REPO_ROOT / "results" / "reported" / "reported_top1.csv"
CONF_DIR = REPO_ROOT / "conf"
