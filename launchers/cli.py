"""``python -m launchers submit [options] OVERRIDES...``: submit runs to SLURM without Hydra's
multirun driver, or (``--dry-run``) print the jobs a sweep would submit and their sbatch lines.

OVERRIDES are those of ``imix-sweeps``; sweeps expand as in ``--multirun`` (``seed=0,1,2``,
``+sweep=demo`` with its ``hydra.sweeper.params``), so one command line can plan a whole sweep.
Launcher settings are overrides too: ``hydra.launcher.partition=gpu hydra.launcher.nodes=2``.

Without ``--wait`` the command returns once the jobs are queued (printing their ids); the jobs
write their results into the sweep dir as usual. With ``--wait`` it waits like a multirun and
exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hydra._internal.callbacks import Callbacks
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus, setup_globals
from hydra.errors import HydraException
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from imix_sweeps.config import CONF_DIR
from launchers.sweep import PlannedRun, Sweep

PRESETS = ("slurm", "slurm_cpu", "local")


def _no_task(cfg: DictConfig) -> None:  # the jobs call imix_sweeps.run.run themselves
    raise AssertionError("not called")


def compose_sweep(overrides: Sequence[str], launcher: str) -> tuple[Sweep, list[list[str]]]:
    """The launcher's ``Sweep`` and the expanded per-run override lists, as ``--multirun`` would."""
    overrides = list(overrides)
    if not any(o.startswith("hydra/launcher=") for o in overrides):
        overrides.insert(0, f"hydra/launcher={launcher}")
    setup_globals()
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(
        task_name="run", config_search_path=create_config_search_path(str(CONF_DIR))
    )
    cfg = hydra.compose_config(
        "config", overrides, run_mode=RunMode.MULTIRUN, with_log_configuration=True
    )
    sweeper = OmegaConf.select(cfg, "hydra.sweeper._target_") or ""
    if not sweeper.endswith("BasicSweeper"):
        raise SystemExit(f"submit expands sweeps with Hydra's basic sweeper, not {sweeper}")
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    args = [f"{k}={v}" for k, v in params.items()]
    args += list(OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False))  # type: ignore[arg-type]
    parsed = OverridesParser.create(config_loader=hydra.config_loader).parse_overrides(args)
    job_overrides = [o for batch in BasicSweeper.split_arguments(parsed, None) for o in batch]
    ctx = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(cfg))
    plugin = Plugins.instance().instantiate_launcher(
        hydra_context=ctx, task_function=_no_task, config=cfg
    )
    if not hasattr(plugin, "sweep"):
        raise SystemExit(
            f"hydra/launcher must be one of {', '.join(PRESETS)} (an imix-sweeps launcher), "
            f"not {type(plugin).__name__}"
        )
    return plugin.sweep(), job_overrides


def describe(plans: list[PlannedRun]) -> list[str]:
    lines = []
    for p in plans:
        what = "skip (done)" if p.skip else ("resume" if p.previous_status else "submit")
        lines.append(f"  #{p.num:<3} {what:<12} {p.label}")
        lines.append(f"       -> {p.run_dir}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m launchers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("submit", help="submit the runs of OVERRIDES (one job per run)")
    sp.add_argument("--launcher", default="slurm", help=f"launcher preset ({', '.join(PRESETS)})")
    sp.add_argument("--dry-run", action="store_true", help="print the jobs and sbatch lines only")
    sp.add_argument("--wait", action="store_true", help="wait for the jobs; exit 1 if one fails")
    sp.add_argument("overrides", nargs="*", help="imix-sweeps overrides (sweeps allowed)")
    args = ap.parse_args(argv)

    try:
        sweep, job_overrides = compose_sweep(args.overrides, args.launcher)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.getLogger("launchers").setLevel(logging.WARNING if args.dry_run else logging.INFO)
    plans = sweep.plan(job_overrides)
    todo = [p for p in plans if not p.skip]
    print(f"sweep dir: {sweep.config.hydra.sweep.dir}")
    print(
        f"{len(plans)} run(s): {len(todo)} to submit, {len(plans) - len(todo)} already done "
        f"({sweep.cluster}, {sweep.params.get('nodes', 1)} node(s) x "
        f"{sweep.params.get('tasks_per_node', 1)} task(s) per run)"
    )
    print("\n".join(describe(plans)))
    if args.dry_run:
        if todo:
            print(
                f"sbatch parameters ({'job array of ' + str(len(todo)) if len(todo) > 1 else 'one job'}):"
            )
            print(sweep.sbatch_preview(len(todo)))
        return 0
    sweep.save_multirun_yaml()
    sweep.submit(plans)
    for p in todo:
        print(f"  #{p.num:<3} job {p.job.job_id}")
    if not args.wait:
        return 0
    returns = sweep.wait(plans)
    failed = [p for p, r in zip(plans, returns) if r.status == JobStatus.FAILED]
    for p in failed:
        print(f"  #{p.num} FAILED: see {p.run_dir}/results.json", file=sys.stderr)
    print(f"{len(plans) - len(failed)} of {len(plans)} run(s) ok")
    return 1 if failed else 0
