"""End-to-end runs on the embedded digits: learning, outputs, resume, failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from imix_sweeps.run import read_results, run
from imix_sweeps.train import CHECKPOINT, TrainSpec, lr_at
from tests.conftest import compose

FIELDS = {
    "method",
    "mix",
    "domain",
    "backbone",
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "temperature",
    "alpha",
    "linear_top1",
    "knn_top1",
    "final_loss",
    "wall_seconds",
    "status",
    "reason",
    "config_hash",
    "cell_hash",
    "git_commit",
    "log_path",
    "run_dir",
}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_smoke_run_learns_and_writes_its_outputs(tmp_path):
    cfg = compose(
        [
            "method=npair",
            "mix=imixup",
            "train.epochs=6",
            "train.batch_size=128",
            "backbone.net.width=16",
            "optim.warmup_epochs=1",
        ]
    )
    res = run(cfg, tmp_path)
    assert res["status"] == "ok" and res["reason"] is None
    assert FIELDS <= set(res)
    on_disk = read_results(tmp_path)
    assert on_disk == json.loads(json.dumps(res))
    rows = metrics(tmp_path)
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3, rows  # the loss falls
    assert res["linear_top1"] > 60.0 and res["knn_top1"] > 40.0  # chance is 10%
    assert res["final_loss"] == pytest.approx(rows[-1]["loss"])
    assert (tmp_path / CHECKPOINT).exists()


@pytest.mark.parametrize("method", ["mocov2", "byol"])
def test_each_core_method_trains_with_imix(tmp_path, method, tiny_overrides):
    res = run(compose([f"method={method}", "mix=imixup", *tiny_overrides]), tmp_path)
    assert res["status"] == "ok" and res["linear_top1"] > 20.0


def test_tabular_domain_trains(tmp_path):
    res = run(
        compose(
            [
                "domain=digits_tab",
                "mix=imixup",
                "train.epochs=3",
                "train.batch_size=128",
                "backbone.net.width=32",
            ]
        ),
        tmp_path,
    )
    assert res["status"] == "ok" and res["linear_top1"] > 60.0


@pytest.mark.parametrize("method", ["npair", "mocov2"])
def test_resumed_run_continues_exactly_where_the_interrupted_one_stopped(
    tmp_path, method, tiny_overrides
):
    overrides = [f"method={method}", "mix=imixup", *tiny_overrides, "train.epochs=3"]
    full = run(compose(overrides), tmp_path / "full")
    calls = {"n": 0}

    def stop_mid_epoch_2() -> bool:  # 10 steps per epoch at batch 128: stop at epoch 2, step 4
        calls["n"] += 1
        return calls["n"] == 14

    part = run(compose(overrides), tmp_path / "cut", should_stop=stop_mid_epoch_2)
    assert part["status"] == "preempted"
    assert len(metrics(tmp_path / "cut")) == 1
    resumed = run(compose(overrides), tmp_path / "cut")
    assert resumed["status"] == "ok"
    a, b = metrics(tmp_path / "full"), metrics(tmp_path / "cut")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit-identical curve
    assert resumed["linear_top1"] == full["linear_top1"]


def test_completed_run_is_skipped_when_relaunched(tmp_path, tiny_overrides):
    first = run(compose(tiny_overrides), tmp_path)
    (tmp_path / "metrics.jsonl").write_text("sentinel\n")  # would be rewritten by a new run
    again = run(compose(tiny_overrides), tmp_path)
    assert again == first and (tmp_path / "metrics.jsonl").read_text() == "sentinel\n"


def test_nan_run_keeps_last_good_checkpoint_of_the_same_run(tmp_path, tiny_overrides, monkeypatch):
    # the loss turns NaN in epoch 2: the checkpoint of epoch 1 stays on disk untouched
    from imix_sweeps.methods import NPair

    original = NPair.forward
    calls = {"n": 0}

    def poisoned(self, x1, x2, *, generator=None):
        calls["n"] += 1
        out = original(self, x1, x2, generator=generator)
        return out._replace(loss=out.loss * float("nan")) if calls["n"] > 12 else out

    monkeypatch.setattr(NPair, "forward", poisoned)
    with pytest.raises(RuntimeError, match="not finite"):
        run(compose([*tiny_overrides, "train.epochs=3"]), tmp_path)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["epoch"] == 1
    res = read_results(tmp_path)
    assert res["status"] == "failed" and "not finite at epoch 2" in res["reason"]
    assert len(metrics(tmp_path)) == 1


def test_corrupt_checkpoint_gets_a_clear_error_and_is_left_in_place(tmp_path, tiny_overrides):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"unreadable .* left in place"):
        run(compose(tiny_overrides), tmp_path)
    assert (tmp_path / CHECKPOINT).read_bytes() == b"not a checkpoint"
    res = read_results(tmp_path)
    assert res["status"] == "failed" and "CheckpointError" in res["reason"]
    fresh = run(
        compose([*tiny_overrides, "train.resume=false"]), tmp_path
    )  # the documented way out
    assert fresh["status"] == "ok"


def test_checkpoint_from_another_config_is_not_resumed(tmp_path, tiny_overrides):
    run(compose([*tiny_overrides, "train.epochs=1"]), tmp_path)
    (tmp_path / "results.json").unlink()
    with pytest.raises(RuntimeError, match="different config"):
        run(compose([*tiny_overrides, "train.epochs=1", "mix=imixup"]), tmp_path)


def test_invalid_config_fails_before_anything_is_built(tmp_path):
    with pytest.raises(ValueError, match="mix=icutmix"):
        run(compose(["domain=digits_tab", "mix=icutmix"]), tmp_path)


def test_lr_schedule_per_step_warmup_then_cosine():
    spec = TrainSpec(epochs=10, lr=1.0, warmup_epochs=2, schedule="cosine")
    assert lr_at(spec, 0.0) == 0.0 and lr_at(spec, 1.0) == pytest.approx(0.5)
    assert lr_at(spec, 2.0) == pytest.approx(1.0)
    assert lr_at(spec, 6.0) == pytest.approx(0.5)
    assert lr_at(spec, 10.0) == pytest.approx(0.0, abs=1e-12)
    floor = TrainSpec(epochs=10, lr=0.6, warmup_epochs=2, schedule="cosine", final_lr=0.0006)
    assert lr_at(floor, 6.0) == pytest.approx(0.0006 + (0.6 - 0.0006) * 0.5)
    assert lr_at(floor, 10.0) == pytest.approx(0.0006)


class OfficialArgs:
    """The attributes main_pretext.py reads, set as it sets them (L202-226)."""

    def __init__(self, lr: float, epochs: int, warm: bool, cos: bool, schedule=()):
        self.lr, self.epochs, self.cos, self.schedule, self.lrd = lr, epochs, cos, schedule, 0.1
        self.warm = warm
        if warm:
            self.warmup_from = 0.0
            self.warm_epochs = 10 if epochs > 500 else 5
            if cos:
                eta_min = lr * 0.001
                self.warmup_to = (
                    eta_min
                    + (lr - eta_min) * (1 + math.cos(math.pi * self.warm_epochs / epochs)) / 2
                )
            else:
                self.warmup_to = lr


def official_lr(args: OfficialArgs, epoch: int, i: int, n: int) -> float:
    """imix main_pretext.py: adjust_learning_rate at the start of each epoch (L518, L685-694),
    then warmup_learning_rate before each step of a warm-up epoch (L587-588, L697-702)."""
    lr = args.lr
    if args.cos:
        lr *= 0.5 * (1.0 + math.cos(math.pi * epoch / args.epochs))
    else:
        for milestone in args.schedule:
            lr *= args.lrd if epoch >= milestone else 1.0
    if args.warm and epoch < args.warm_epochs:
        p = (i + 1 + epoch * n) / (args.warm_epochs * n)
        lr = args.warmup_from + p * (args.warmup_to - args.warmup_from)
    return lr


@pytest.mark.parametrize("epochs", [200, 1000])
def test_cosine_epoch_is_the_official_imix_schedule(epochs):
    n = 7  # steps per epoch
    lr = 0.125
    args = OfficialArgs(lr, epochs, warm=True, cos=True)
    spec = TrainSpec(epochs=epochs, lr=lr, warmup_epochs=args.warm_epochs, schedule="cosine_epoch")
    points = [(0, 0), (0, 3), (0, 6), (1, 0), (4, 6), (5, 0), (9, 6), (10, 0), (10, 5)]
    points += [(epochs // 2, 2), (epochs - 1, 0), (epochs - 1, 6)]
    for e, i in points:
        assert lr_at(spec, e, i, n) == pytest.approx(official_lr(args, e, i, n), rel=1e-12), (e, i)
    # constant within an epoch after the warm-up; the warm-up ends on the next epoch's value
    assert lr_at(spec, 20, 0, n) == lr_at(spec, 20, 6, n)
    w = args.warm_epochs
    assert lr_at(spec, w - 1, n - 1, n) == pytest.approx(
        0.001 * lr + (lr - 0.001 * lr) * 0.5 * (1 + math.cos(math.pi * w / epochs))
    )


def test_step_schedule_is_the_official_one_with_warmup():
    n = 5
    args = OfficialArgs(0.125, 500, warm=True, cos=False, schedule=(300, 400))
    spec = TrainSpec(
        epochs=500, lr=0.125, warmup_epochs=5, schedule="step", milestones=[300, 400], gamma=0.1
    )
    for e, i in [(0, 0), (2, 4), (4, 4), (5, 0), (299, 4), (300, 0), (399, 2), (400, 0), (499, 4)]:
        assert lr_at(spec, e, i, n) == pytest.approx(official_lr(args, e, i, n), rel=1e-12), (e, i)


def test_cosine_epoch_with_a_hold_is_mixco_simclr():
    """MixCo simclr/pretrain.py L135-138, L251-253: CosineAnnealingLR(T_max=epochs, eta_min=0)
    stepped at the end of epochs >= 10 only."""
    epochs, lr = 100, 0.15
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0)
    spec = TrainSpec(epochs=epochs, lr=lr, warmup_epochs=0, schedule="cosine_epoch", hold_epochs=10)
    for e in range(epochs):
        assert lr_at(spec, e, 3, 8) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), e
        if e >= 10:
            opt.step()
            sched.step()


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="cosine_epoch"):
        lr_at(TrainSpec(schedule="linear"), 3.0)


def test_cmc_runs_end_to_end_on_the_embedded_rgb_domain(tmp_path):
    cfg = compose(
        [
            "method=cmc",
            "domain=digits_rgb",
            "method.model.loss=softmax",
            "method.model.num_negatives=256",
            "train.epochs=2",
            "train.batch_size=128",
            "backbone.net.width=8",
            "method.model.dim=16",
        ]
    )
    res = run(cfg, tmp_path)
    assert (
        res["status"] == "ok" and res["linear_top1"] > 20.0
    )  # the domain's normalisation was undone


def test_augmentation_threads_give_the_same_run(tmp_path, tiny_overrides):
    """train.augment_threads only moves the augmentation to background threads: same curve, same
    evaluation, same config hash (it is a run-only key)."""
    plain = run(compose(["mix=imixup", *tiny_overrides]), tmp_path / "plain")
    ahead = run(
        compose(["mix=imixup", *tiny_overrides, "train.augment_threads=2"]), tmp_path / "ahead"
    )
    assert plain["status"] == ahead["status"] == "ok"
    a, b = metrics(tmp_path / "plain"), metrics(tmp_path / "ahead")
    assert len(a) == 2 and [r["loss"] for r in a] == [r["loss"] for r in b]
    assert plain["linear_top1"] == ahead["linear_top1"]
    assert plain["config_hash"] == ahead["config_hash"]
