"""The committed sweeps: job counts, exactly the table's cells, and composition of their jobs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from analysis import CONF_DIR, REPO_ROOT
from analysis.reported import Cell
from analysis.sweeps import job_settings, jobs, missing_options, sweep_names, sweep_params
from analysis.tables import SPECS, table_cells
from tests.conftest import compose

# sweep -> number of jobs (cells x seeds); a new sweep file needs its count here.
EXPECTED_JOBS = {
    "demo": 3 * 2 * 2,
    "imix_table1": 24 * 3,
    "imix_table1_smoke": 2 * 3 * 2,
    "unmix_table1": 8,
    "unmix_table1_smoke": 8,
    "unmix_swav_cifar": 2 * 2 * 5,
    "unmix_swav_cifar_smoke": 2 * 5,
    "unmix_swav_cifar_repo": 2 * 2 * 5,
    "unmix_swav_cifar_repo_smoke": 2 * 5,
    "unmix_cifar_demo": 2 * 2 * 2,
    "unmix_cifar_demo_smoke": 2 * 2,
    "cmc_imagenet": 4,
    "cmc_imagenet_smoke": 4,
    "cmc_imagenet100": 3,
    "cmc_imagenet100_smoke": 3,
    "mini_table1": 3 * 3 * 2 * 3,  # domain x method x mix x seed
    "mini_table1_smoke": 3 * 3 * 2 * 2,
}
SEEDS = {"imix_table1": 3}
SMOKE = sorted(n for n in EXPECTED_JOBS if n.endswith("_smoke") or n == "demo")
PAPER = sorted(n for n in EXPECTED_JOBS if n not in SMOKE)


def test_every_sweep_file_has_an_expected_count() -> None:
    assert sorted(sweep_names()) == sorted(EXPECTED_JOBS)


@pytest.mark.parametrize("name", sorted(EXPECTED_JOBS))
def test_job_count(name: str) -> None:
    js = jobs(name)
    assert len(js) == EXPECTED_JOBS[name]
    # cross-check Hydra's expansion with a plain cartesian product of the comma lists
    assert math.prod(len(v.split(",")) for v in sweep_params(name).values()) == len(js)
    assert len({tuple(sorted(j)) for j in js}) == len(js)  # no job twice


def test_cli_override_selects_one_cell() -> None:
    js = jobs("imix_table1", ["+cell=imix_t1_cifar10_npair_none"])
    assert len(js) == 3 and all("+cell=imix_t1_cifar10_npair_none" in j for j in js)
    assert sorted(j[2] for j in js) == ["seed=0", "seed=1", "seed=2"]


def _matches(s: dict, c: Cell) -> bool:
    want = {
        "domain": c.domain,
        "backbone": c.backbone,
        "method": c.method,
        "mix": c.mix,
        "train.epochs": c.epochs,
        "train.batch_size": c.batch_size,
    }
    for k, v in c.variant.match:
        want[f"method.model.{k}"] = v
    return all(s[k] == v for k, v in want.items())


@pytest.mark.parametrize(
    "key", sorted(k for k, s in SPECS.items() if s.sweep), ids=lambda k: "/".join(k)
)
def test_sweep_runs_exactly_the_tables_cells(key: tuple[str, str]) -> None:
    """Every runnable cell is run by its sweep (seeds x), and every job belongs to a cell."""
    spec = SPECS[key]
    cells = [c for c in table_cells(*key) if c.runnable]
    assert spec.sweep is not None and spec.overrides is not None
    js = jobs(spec.sweep)
    settings = [job_settings(j) for j in js]
    n_seeds = SEEDS.get(spec.sweep, 1)
    for c in cells:
        hits = [s for s in settings if _matches(s, c)]
        assert len(hits) == n_seeds, (c.key(), len(hits))
        assert len({s["seed"] for s in hits}) == n_seeds
        # the command printed for a missing cell selects exactly that cell's jobs
        sel = jobs(spec.sweep, spec.overrides(c))
        assert len(sel) == n_seeds and all(_matches(job_settings(j), c) for j in sel)
    assert len(js) == len(cells) * n_seeds


def test_cells_are_used_and_documented() -> None:
    used = {
        o.split("=", 1)[1]
        for n in sweep_names()
        for j in jobs(n)
        for o in j
        if o.startswith("+cell=")
    }
    files = {p.stem for p in (CONF_DIR / "cell").glob("*.yaml")}
    assert used == files  # no orphan cell file, no cell without a file
    for f in files:
        text = (CONF_DIR / "cell" / f"{f}.yaml").read_text()
        assert text.startswith("# @package _global_\n#"), f  # package line, then what it is


def _compose_job(job: list[str]) -> None:
    miss = missing_options(job)
    if miss:
        pytest.skip(f"options not in this tree yet: {', '.join(sorted(miss))}")
    cfg = compose(job)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    from imix_sweeps.config import validate

    validate(cfg)
    s = job_settings(job)
    for k in ("domain", "backbone", "method", "mix"):
        if s[k] is not None:
            assert cfg[k].name == s[k], (k, job)
    if s["train.epochs"] is not None:
        assert cfg.train.epochs == s["train.epochs"]
    from imix_sweeps.config import loss_of

    assert loss_of(cfg) == s["method.model.loss"], job  # what results.json will record
    return cfg


@pytest.mark.parametrize("job", [j for n in SMOKE for j in jobs(n)], ids=lambda j: " ".join(j))
def test_smoke_job_composes(job: list[str]) -> None:
    cfg = _compose_job(job)
    if job[0] == "+sweep=mini_table1_smoke":  # real small domains, read only when run
        assert cfg.domain.name in ("fashion_mnist", "spoken_words", "letter")
        assert cfg.train.epochs == 1 and cfg.train.device == "cpu"
        return
    assert cfg.domain.name in ("digits", "digits_tab", "digits_rgb")
    if job[0] != "+sweep=demo":
        assert cfg.train.epochs <= 5 and cfg.train.device == "cpu"


@pytest.mark.parametrize("name", PAPER)
def test_paper_sweep_jobs_compose_where_options_exist(name: str) -> None:
    composed = skipped = 0
    reasons: set[str] = set()
    for job in jobs(name):
        miss = missing_options(job)
        if miss:
            skipped += 1
            reasons.update(miss)
            continue
        _compose_job(job)
        composed += 1
    if not composed:
        pytest.skip(f"no job composable yet ({skipped} need {', '.join(sorted(reasons))})")


def test_smoke_sweeps_mirror_their_paper_grid() -> None:
    """A smoke sweep runs the paper sweep's method x mix (x variant) combinations."""

    def combos(name: str) -> set[tuple]:
        return {
            (s["method"], s["mix"], s["method.model.symmetric"])
            for s in map(job_settings, jobs(name))
        }

    for paper in PAPER:
        assert combos(f"{paper}_smoke") == combos(paper), paper


@pytest.mark.slow
def test_demo_sweep_end_to_end(tmp_path: Path) -> None:
    """`imix-sweeps --multirun +sweep=demo` with 1 epoch: 12 runs, then summary.md."""
    out = tmp_path / "demo"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "imix_sweeps",
            "--multirun",
            "+sweep=demo",
            "train.epochs=1",
            "train.batch_size=128",
            f"hydra.sweep.dir={out}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    md = (out / "summary.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| method")]
    assert [ln.split(" | ")[0] for ln in rows] == ["| N-pair", "| MoCo v2", "| BYOL"]
    assert all(ln.count("(2)") == 6 for ln in rows)  # 3 metrics x 2 mixes, 2 seeds each
    assert "Sweep summary" in r.stdout
