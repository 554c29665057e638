"""The mini Table 1: layout, paired tests, plot, callback, and the smoke sweep end to end."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from analysis import REPO_ROOT
from analysis.cli import main as cli_main
from analysis.mini_table1 import (
    DOMAINS,
    METHODS,
    MiniTable1Callback,
    mini_table1,
    paired_p,
    sign_flip_p,
    write,
)
from imix_sweeps.data.speech import NOISE_DIR
from tests.test_domains_images import write_fashion
from tests.test_domains_letter import write_letter
from tests.test_domains_speech import tone


def fake_runs(seeds: int = 3) -> pd.DataFrame:
    """Runs of every cell; i-Mix adds 1 + seed/10 points to every baseline (gain > 0)."""
    rows = []
    for i, (d, m, s) in enumerate(itertools.product(DOMAINS, METHODS, range(seeds))):
        base = 70.0 + i % 7 + s
        for mix, top1 in (("none", base), ("imixup", base + 1.0 + s / 10)):
            rows.append(
                dict(domain=d, method=m, mix=mix, seed=s, status="ok", linear_top1=top1,
                     knn_top1=top1 - 5)
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_table_cells_gains_and_layout():
    runs = fake_runs()
    t = mini_table1(runs)
    assert t.domains == list(DOMAINS) and t.methods == list(METHODS)
    assert len(t.cells) == 9 and all(c.complete and c.seeds == [0, 1, 2] for c in t.cells)
    c = t.cell("letter", "byol")
    sel = runs[(runs.domain == "letter") & (runs.method == "byol")]
    base = sel[sel.mix == "none"].linear_top1.to_numpy()
    mixed = sel[sel.mix == "imixup"].linear_top1.to_numpy()
    assert c.base[0] == pytest.approx(base.mean()) and c.base[1] == pytest.approx(base.std(ddof=1))
    assert c.gain[0] == pytest.approx(1.1) and c.gain[1] == pytest.approx(0.1)
    from scipy import stats

    assert c.p == pytest.approx(stats.ttest_rel(mixed, base).pvalue)
    md = t.markdown()
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0] == (
        "| domain | N-pair | + i-Mix | Δ (p) | MoCo v2 | + i-Mix | Δ (p) | BYOL | + i-Mix | Δ (p) |"
    )
    assert [ln.split(" | ")[0] for ln in lines[1:]] == [
        "| Image: Fashion-MNIST",
        "| Speech: spoken words (espeak-ng)",
        "| Tabular: Letter Recognition",
    ]
    assert all(ln.count("(3)") == 6 and ln.count("+1.1 (p=") == 3 for ln in lines[1:])
    assert "paired t" in md
    assert t.frame().shape[0] == 9


def test_missing_cell_and_unpaired_seeds():
    runs = fake_runs()
    runs = runs[~((runs.domain == "letter") & (runs.method == "npair") & (runs.mix == "imixup"))]
    runs = runs[~((runs.domain == "letter") & (runs.method == "byol") & (runs.seed == 2) & (runs.mix == "none"))]  # fmt: skip
    t = mini_table1(runs)
    c = t.cell("letter", "npair")
    assert not c.complete and c.gain[0] is None and c.p is None
    assert t.cell("letter", "byol").seeds == [0, 1] and t.cell("letter", "byol").gain[2] == 2
    assert "–" in t.markdown()


def test_sign_flip_is_exact():
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)  # all +, or all -
    assert sign_flip_p([1.0, -1.0]) == 1.0
    assert sign_flip_p([3.0, 1.0, 1.0, 1.0]) == pytest.approx(2 / 16)
    # observed |sum| 2: of the 16 sign patterns only the 2 with |sum| 0 fall below
    assert sign_flip_p([3.0, 1.0, -1.0, -1.0]) == pytest.approx(14 / 16)
    assert paired_p([0.0, 0.0, 0.0]) == (1.0, "paired t")
    assert paired_p([1.0]) == (None, "n<2")


def test_write_and_cli(tmp_path: Path):
    runs = fake_runs()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    paths = write(mini_table1(runs), tmp_path / "w")
    assert [p.name for p in paths] == ["mini_table1.md", "mini_table1.csv", "mini_table1_gain.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(paths[1]).shape[0] == 9
    out = tmp_path / "cli"
    assert cli_main(["mini-table1", "--runs", str(tmp_path / "runs.csv"), "--out", str(out)]) == 0
    assert (out / "mini_table1_gain.png").is_file()
    assert (out / "knn_top1" / "mini_table1.md").read_text().count("(3)") == 18


def write_words(root: Path, per_word: int = 8) -> None:
    """Six words x ``per_word`` 16 kHz tones in the Speech Commands layout; one of each in test."""
    test = []
    for k, w in enumerate(("yes", "no", "up", "go", "bed", "cat")):
        (root / w).mkdir(parents=True)
        for i in range(per_word):
            name = f"{k:04x}{i:04x}_nohash_0.wav"
            sf.write(root / w / name, tone(300 + 150 * k + 20 * i, 1.0, k * 100 + i), 16000)
            if i == 0:
                test.append(f"{w}/{name}")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "validation_list.txt").write_text("")
    (root / NOISE_DIR).mkdir()
    noise = (0.1 * np.random.default_rng(0).normal(size=32000)).astype(np.float32)
    sf.write(root / NOISE_DIR / "white_noise.wav", noise, 16000)


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path: Path):
    """`imix-sweeps --multirun +sweep=mini_table1_smoke` on tiny files in each real format: 36
    runs, then the table with every cell filled (2 seeds each) and the gain plot."""
    data = tmp_path / "data"
    write_fashion(data / "fashion-mnist", n_train=64, n_test=20)
    write_letter(data / "letter", 200)
    write_words(data / "spoken_words")
    out = tmp_path / "sweep"
    env = {**os.environ, "IMIX_DATA": str(data), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "imix_sweeps", "--multirun", "+sweep=mini_table1_smoke"]
    r = subprocess.run(
        [*cmd, f"hydra.sweep.dir={out}", "eval.knn_k=5"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list(out.glob("*/results.json"))) == 36
    md = (out / "mini_table1" / "mini_table1.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| domain")]
    assert len(rows) == 3
    for ln in rows:
        assert ln.count("(2)") == 6 and "–" not in ln  # every cell, 2 seeds without and with
        assert ln.count("(p=") == 3
    assert (out / "mini_table1" / "mini_table1_gain.png").stat().st_size > 1000
    assert (out / "mini_table1" / "knn_top1" / "mini_table1.md").is_file()
    assert "Mini Table 1" in r.stdout


def test_callback_never_raises(tmp_path: Path, caplog):
    MiniTable1Callback().on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "none")}}})
    )
    assert "mini table 1" in caplog.text
