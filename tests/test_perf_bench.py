"""The benchmark's data preparation and paths (its speed figures are never asserted here)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from imix_sweeps import augment as A
from imix_sweeps import augment_audio as AA
from imix_sweeps import bench


def test_synthetic_cifar10_is_read_by_torchvision(tmp_path) -> None:
    root = bench.write_synthetic_cifar10(tmp_path, n_train=50, n_test=20, seed=1)
    folder = tmp_path / bench.CIFAR_FOLDER
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    assert entry["data"].dtype == np.uint8 and entry["data"].shape == (10, 3072)
    train = bench.load_cifar10(root, checked=False, train=True)
    test = bench.load_cifar10(root, checked=False, train=False)
    assert train.data.shape == (50, 32, 32, 3) and len(test) == 20
    assert train.classes == bench.CIFAR_CLASSES
    # HWC in torchvision = the R, G, B planes of the pickled rows
    np.testing.assert_array_equal(train.data[0, :, :, 1].reshape(-1), entry["data"][0, 1024:2048])
    assert set(train.targets) <= set(range(10))
    assert train.data.std() > 20  # not a constant image


def test_stock_reader_rejects_non_official_files(tmp_path) -> None:
    root = bench.write_synthetic_cifar10(tmp_path, n_train=10, n_test=5)
    with pytest.raises(RuntimeError, match="cannot read CIFAR-10"):
        bench.load_cifar10(root, checked=True, train=True)  # MD5 of the official files
    with pytest.raises(FileNotFoundError, match=r"data_batch_1\.\.5"):
        bench.cifar_root(tmp_path / "nowhere")
    assert bench.cifar_root(tmp_path / bench.CIFAR_FOLDER) == tmp_path


def _dom(tmp_path, n=64):
    root = bench.write_synthetic_cifar10(tmp_path, n_train=n, n_test=16)
    train = bench.load_cifar10(root, checked=False, train=True)
    test = bench.load_cifar10(root, checked=False, train=False)
    return bench.device_domain(train, test, knn_test=16), root


def test_worker_device_path_yields_the_domain_batches(tmp_path) -> None:
    dom, _ = _dom(tmp_path)
    cpu = torch.device("cpu")
    expected = list(dom.pretrain_batches(0, 16, seed=0, device=cpu))
    views = bench.BatchedViews(dom, 16)
    got = [views[i] for i in range(len(views))]
    assert len(got) == len(expected) == 4
    for (a1, a2), (b1, b2) in zip(got, expected):
        assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert got[0][0].shape == (16, 3, 32, 32) and not torch.equal(got[0][0], got[0][1])


def test_thread_device_path_yields_the_domain_batches(tmp_path) -> None:
    dom, _ = _dom(tmp_path)
    cpu = torch.device("cpu")
    expected = list(dom.pretrain_batches(0, 16, seed=0, device=cpu))
    it = bench.device_batches(dom, 16, cpu, prefetch=2)
    got = [next(it) for _ in range(len(expected) + 1)]  # runs on into the next epoch
    for (a1, a2), (b1, b2) in zip(got, expected):
        assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(got[-1][0], expected[0][0])  # epoch 1 has its own order


def test_steady_rate_drains_the_ready_batches_first() -> None:
    taken: list[int] = []

    def batches():
        i = 0
        while True:
            taken.append(i)
            yield i, i
            i += 1

    rate = bench.steady_pairs_per_s(batches(), batch=8, drain=3, min_batches=5, min_seconds=0.0)
    assert taken == list(range(8))  # 3 drained untimed + 5 timed
    assert rate > 0


def test_reference_loader_gives_normalised_two_view_batches(tmp_path) -> None:
    _, root = _dom(tmp_path)
    loader = bench.reference_loader(
        root, checked=False, batch=8, workers=0, device=torch.device("cpu")
    )
    x1, x2 = next(bench.reference_batches(loader, torch.device("cpu")))
    assert x1.shape == x2.shape == (8, 3, 32, 32)
    assert x1.min() < 0 and not torch.equal(x1, x2)  # normalised, two different views


def test_bad_mode_is_rejected() -> None:
    with pytest.raises(SystemExit, match="unknown mode"):
        bench.main(["--modes", "device,fast", "--synthetic-train", "10"])


@pytest.mark.slow
def test_bench_runs_end_to_end_on_cpu(tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    rep = bench.main(
        [
            "--device", "cpu", "--synthetic-train", "256", "--batch", "8", "--steps", "1",
            "--warmup", "0", "--workers", "0", "--aug-batches", "1", "--knn-train", "16",
            "--knn-test", "16", "--json", str(out),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert "| target | result | status |" in text and "not measured" in text
    assert {r.mode for r in rep.training} == {"device", "reference"}
    assert all(r.step_s > 0 and r.epoch_s > rep.knn_s > 0 for r in rep.training)
    assert out.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_augmentation_never_waits_for_the_gpu() -> None:
    x = torch.rand(64, 3, 32, 32, device="cuda")
    wave = torch.randn(8, 16000, device="cuda")
    bank = torch.randn(2, 32000, device="cuda")
    AA.speech_view(wave, bank, generator=torch.Generator())  # builds the cached mel filters
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        A.contrastive_views(x, 32, generator=torch.Generator().manual_seed(0), blur=(0.1, 2.0))
        AA.speech_view(wave, bank, generator=torch.Generator().manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_step_never_waits_for_the_gpu() -> None:
    from imix_sweeps.data.base import step_generator
    from imix_sweeps.train import TrainSpec, build_optimizer, train_step

    dev = torch.device("cuda")
    model = bench.build_model(dev).to(memory_format=torch.channels_last)
    opt = build_optimizer(model, TrainSpec(), dev)
    x1, x2 = torch.rand(2, 32, 3, 32, 32, device=dev)

    def step(s: int) -> torch.Tensor:
        g = step_generator(0, 0, s, 0, "mix")
        return train_step(
            model, opt, x1, x2, generator=g, amp_dtype=torch.bfloat16, channels_last=True
        )

    step(0)  # first step: cuDNN / optimizer state set-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [step(s) for s in range(1, 4)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(torch.isfinite(v) for v in losses)


def _image_folder(root, per_class: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        (root / wnid).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(root / wnid / f"{wnid}_{i}.JPEG", quality=90)


@pytest.mark.parametrize("pipeline", ["device", "reference"])
def test_streaming_imagenet_path_is_timed(tmp_path, pipeline) -> None:
    _image_folder(tmp_path / "train", 6)
    _image_folder(tmp_path / "val", 2)
    v = bench.stream_pairs_per_s(
        tmp_path, pipeline, batch=4, workers=0, n=1, device=torch.device("cpu")
    )
    assert v > 0
    with pytest.raises(ValueError, match="fewer than 2 batches"):
        bench.stream_pairs_per_s(
            tmp_path, pipeline, batch=8, workers=0, n=1, device=torch.device("cpu")
        )
