"""``python -m launchers submit [options] OVERRIDES...``: submit runs to SLURM without Hydra's
multirun driver, or (``--dry-run``) print the jobs a sweep would submit and their sbatch lines.

OVERRIDES are those of ``imix-sweeps``; sweeps expand as in ``--multirun`` (``seed=0,1,2``,
``+sweep=demo`` with its ``hydra.sweeper.params``), so one command line can plan a whole sweep.
Launcher settings are overrides too: ``hydra.launcher.partition=gpu hydra.launcher.nodes=2``.

The dry run needs no cluster: it validates every run's config (``imix_sweeps.config.validate``;
an invalid one is listed as ``invalid`` with the reason and left out of the job array) and
estimates each run's wall time and GPU-hours, and their totals, from the step times measured
per device type (``benchmarks/step_times.csv``) or, where none fits, a documented FLOP model
(``launchers/estimate.py``); each line says which it used.

Without ``--wait`` the command returns once the jobs are queued (printing their ids); the jobs
write their results into the sweep dir as usual. With ``--wait`` it waits like a multirun and
exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus, setup_globals
from hydra.errors import HydraException
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from imix_sweeps.clihelp import HelpFormatter
from imix_sweeps.config import CONF_DIR, ConfigError, validate
from launchers import estimate as est
from launchers._private import Callbacks, Hydra, create_config_search_path, expand_sweep
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
    job_overrides = expand_sweep(parsed)
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


@dataclass
class Check:
    """What the dry run found for one planned run: why it is invalid, or its estimate."""

    invalid: str | None = None
    estimate: est.Estimate | None = None


def check(
    plans: list[PlannedRun], params: dict, device: str, rows: list[est.StepTime]
) -> list[Check]:
    """Validate every run's config and estimate the ones that are valid."""
    nodes = int(params.get("nodes") or 1)
    ranks = nodes * int(params.get("tasks_per_node") or 1)
    gpus = nodes * int(params.get("gpus_per_node") or 0)
    out = []
    for p in plans:
        cfg = p.task_cfg
        if cfg is None:
            out.append(Check())
            continue
        try:
            validate(cfg)
        except ConfigError as e:
            out.append(Check(invalid=str(e).removeprefix("invalid config:").strip()))
            continue
        except Exception as e:  # a config that cannot even be read is invalid too
            out.append(Check(invalid=f"{type(e).__name__}: {e}"))
            continue
        try:
            e = est.estimate(
                domain=str(cfg.domain.name),
                backbone=str(cfg.backbone.name),
                epochs=int(cfg.train.epochs),
                batch=int(cfg.train.batch_size),
                device=device,
                ranks=ranks,
                gpus=gpus,
                rows=rows,
            )
        except Exception:  # an estimate is a convenience: never stop the listing over it
            e = None
        out.append(Check(estimate=e))
    return out


def describe(plans: list[PlannedRun], checks: list[Check] | None = None) -> list[str]:
    lines = []
    checks = checks or [Check() for _ in plans]
    for p, c in zip(plans, checks):
        if p.skip:
            what = "skip (done)"
        elif c.invalid:
            what = "invalid"
        else:
            what = "resume" if p.previous_status else "submit"
        tail = ""
        if c.estimate and not p.skip:
            e = c.estimate
            tail = f"  ~{est.fmt_hours(e.wall_s)}"
            if e.gpus:
                tail += f", {e.gpu_hours:.2f} GPU-h"
            tail += f" [{e.basis}]"
        lines.append(f"  #{p.num:<3} {what:<12} {p.label}{tail}")
        lines.append(f"       -> {p.run_dir}")
        if c.invalid:
            lines += [f"       {ln.strip()}" for ln in c.invalid.splitlines()]
    return lines


def totals(plans: list[PlannedRun], checks: list[Check], params: dict) -> list[str]:
    """The sweep's totals: runs to submit, GPU-hours, longest run, array wall time."""
    todo = [(p, c) for p, c in zip(plans, checks) if not p.skip and not c.invalid]
    ests = [c.estimate for _, c in todo if c.estimate]
    lines = []
    n_bad = sum(1 for p, c in zip(plans, checks) if c.invalid and not p.skip)
    if n_bad:
        lines.append(f"{n_bad} invalid run(s): not submitted (see the reasons above)")
    if not ests:
        return lines
    walls = sorted((e.wall_s for e in ests), reverse=True)
    par = max(int(params.get("array_parallelism") or len(walls)), 1)
    slots = [0.0] * min(par, len(walls))
    for w in walls:  # longest first onto the least loaded of `par` slots
        i = slots.index(min(slots))
        slots[i] += w
    bases = sorted({e.basis.split(" (")[0].split(",")[0] for e in ests})
    gpu_h = sum(e.gpu_hours for e in ests)
    line = (
        f"estimate for {len(ests)} run(s): {est.fmt_hours(sum(walls))} of run time"
        + (f", {gpu_h:.1f} GPU-hours" if any(e.gpus for e in ests) else "")
        + f"; longest run ~{est.fmt_hours(walls[0])}; the array at {par} at a time: "
        f"~{est.fmt_hours(max(slots))} (basis: {', '.join(bases)})"
    )
    lines.append(line)
    limit = params.get("timeout_min")
    if limit:
        requeues = int(params.get("max_requeues") or 0)
        over = [w for w in walls if w > float(limit) * 60]
        beyond = [w for w in walls if w > float(limit) * 60 * (requeues + 1)]
        if over:
            lines.append(
                f"note: {len(over)} run(s) exceed timeout_min={limit} and will checkpoint and "
                f"requeue; {len(beyond)} need more than the {requeues + 1} attempts allowed "
                "(raise hydra.launcher.timeout_min or max_requeues)"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `... --dry-run | head`: the reader is gone; end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m launchers",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sp = sub.add_parser(
        "submit",
        help="submit the runs of OVERRIDES (one job per run)",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    sp.add_argument("--launcher", default="slurm", choices=PRESETS, help="launcher preset")
    sp.add_argument(
        "--dry-run",
        action="store_true",
        help="list the jobs (validated, with estimates) and the sbatch lines; send nothing",
    )
    sp.add_argument("--wait", action="store_true", help="wait for the jobs; exit 1 if one fails")
    sp.add_argument(
        "--device-type",
        help="device type for the estimates, as in step_times.csv "
        f"(model types: {', '.join(est.THROUGHPUT)}; default: gpu if the launcher asks for "
        "GPUs, else cpu)",
    )
    sp.add_argument(
        "--step-times", default=str(est.STEP_TIMES), help="measured seconds per step (CSV)"
    )
    sp.add_argument("overrides", nargs="*", help="imix-sweeps overrides (sweeps allowed)")
    args = ap.parse_args(argv)

    try:
        sweep, job_overrides = compose_sweep(args.overrides, args.launcher)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.getLogger("launchers").setLevel(logging.WARNING if args.dry_run else logging.INFO)
    plans = sweep.plan(job_overrides)
    device = args.device_type or ("gpu" if int(sweep.params.get("gpus_per_node") or 0) else "cpu")
    checks = check(plans, sweep.params, device.lower(), est.load_step_times(args.step_times))
    invalid = {p.num for p, c in zip(plans, checks) if c.invalid}
    todo = [p for p in plans if not p.skip and (p.num not in invalid or not args.dry_run)]
    print(f"sweep dir: {sweep.config.hydra.sweep.dir}")
    print(
        f"{len(plans)} run(s): {len(todo)} to submit, "
        f"{sum(p.skip for p in plans)} already done"
        + (f", {len(invalid)} invalid" if invalid else "")
        + f" ({sweep.cluster}, {sweep.params.get('nodes', 1)} node(s) x "
        f"{sweep.params.get('tasks_per_node', 1)} task(s) per run; estimates for {device})"
    )
    print("\n".join(describe(plans, checks)))
    print("\n".join(totals(plans, checks, sweep.params)))
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
