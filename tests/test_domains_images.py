"""Image domains read from tiny files in exactly the distributed formats."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imix_sweeps import augment as A
from imix_sweeps.data import images as I
from imix_sweeps.data.base import DataMissingError, InMemoryDomain
from imix_sweeps.data.cache import CorruptDataError
from imix_sweeps.data.loader import LoaderDomain, sample_seed, torchvision_seeded

CPU = torch.device("cpu")


def rand_images(n: int, size: int, seed: int, channels: int = 3) -> np.ndarray:
    """Smooth random images (so resampling and JPEG keep them recognisable)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 4, 4, channels)).astype(np.float32)
    t = torch.from_numpy(base).permute(0, 3, 1, 2)
    up = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear")
    return up.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


# ----------------------------------------------------------------------------- writers
def write_cifar(root: Path, classes: int, n_train: int = 40, n_test: int = 20) -> dict:
    sub = root / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
    sub.mkdir(parents=True)
    rng = np.random.default_rng(classes)
    xtr, xte = rand_images(n_train, 32, 1), rand_images(n_test, 32, 2)
    ytr, yte = rng.integers(0, classes, n_train), rng.integers(0, classes, n_test)

    def dump(path: Path, x: np.ndarray, y: np.ndarray) -> None:
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)  # CIFAR rows: R plane, G, B
        d = {"data": flat, "filenames": [f"{i}.png" for i in range(len(x))]}
        if classes == 10:
            d["labels"] = y.tolist()
        else:
            d["fine_labels"], d["coarse_labels"] = y.tolist(), (y // 5).tolist()
        with open(path, "wb") as f:
            pickle.dump(d, f)

    if classes == 10:
        for b in range(5):
            s = slice(b * n_train // 5, (b + 1) * n_train // 5)
            dump(sub / f"data_batch_{b + 1}", xtr[s], ytr[s])
        dump(sub / "test_batch", xte, yte)
    else:
        dump(sub / "train", xtr, ytr)
        dump(sub / "test", xte, yte)
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}


def write_stl(root: Path, n_train=10, n_test=8, n_unl=12) -> dict:
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    out = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2), ("unlabeled", n_unl, 3)):
        x = rand_images(n, 96, seed)
        # stored column-major per image: [N, C, W, H]
        (base / f"{split}_X.bin").write_bytes(x.transpose(0, 3, 2, 1).tobytes())
        out[f"x_{split}"] = x
        if split != "unlabeled":
            y = np.arange(n) % 10 + 1
            (base / f"{split}_y.bin").write_bytes(y.astype(np.uint8).tobytes())
            out[f"y_{split}"] = y - 1
    return out


def write_tiny(root: Path, wnids=("n01443537", "n01629819", "n01641577"), per_class=4, n_val=6):
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for k, w in enumerate(wnids):
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i, im in enumerate(rand_images(per_class, 64, 10 + k)):
            Image.fromarray(im).save(d / f"{w}_{i}.JPEG", quality=95)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    (root / "val" / "images").mkdir(parents=True)
    lines, labels = [], []
    for i, im in enumerate(rand_images(n_val, 64, 99)):
        Image.fromarray(im).save(root / "val" / "images" / f"val_{i}.JPEG", quality=95)
        w = wnids[(i * 2) % len(wnids)]
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
        labels.append(sorted(wnids).index(w))
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return labels


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_fashion(root: Path, n_train=30, n_test=12, gz=True) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    xtr, xte = rand_images(n_train, 28, 5, 1)[..., 0], rand_images(n_test, 28, 6, 1)[..., 0]
    ytr, yte = np.arange(n_train) % 10, (np.arange(n_test) * 3) % 10
    write_idx(root / "train-images-idx3-ubyte", xtr, gz)
    write_idx(root / "train-labels-idx1-ubyte", ytr, gz)
    write_idx(root / "t10k-images-idx3-ubyte", xte, not gz)  # mixed: both forms are read
    write_idx(root / "t10k-labels-idx1-ubyte", yte, not gz)
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}


def write_folder(root: Path, wnids, per_class=3) -> None:
    for split in ("train", "val"):
        for k, w in enumerate(wnids):
            d = root / split / w
            d.mkdir(parents=True)
            for i in range(per_class):  # JPEGs of different sizes, as in ImageNet
                im = rand_images(1, 40 + 8 * i, 20 + k + 7 * i)[0]
                Image.fromarray(im).save(d / f"{w}_{i}.JPEG")


# ----------------------------------------------------------------------------- shared checks
def check_device_domain(d: InMemoryDomain, channels: int, size: int, batch: int) -> None:
    assert d.modality == "image" and d.in_shape == [channels, size, size]
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert int(d.train_y.min()) >= 0 and int(d.train_y.max()) < d.num_classes
    assert int(d.test_y.min()) >= 0 and int(d.test_y.max()) < d.num_classes
    # augmentation keeps shape and the [0, 1] range before normalisation
    x = d._to_float(d.train_x[:batch])
    a = d.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == (batch, channels, size, size) and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, x)
    x1, x2 = next(d.pretrain_batches(0, batch, seed=1, device=CPU))
    assert x1.shape == x2.shape == (batch, channels, size, size) and x1.dtype == torch.float32
    assert not torch.equal(x1, x2)
    again = next(d.pretrain_batches(0, batch, seed=1, device=CPU))
    assert torch.equal(again[0], x1)
    e1 = [x for x, _ in d.eval_batches("test", 7, device=CPU)]
    e2 = [x for x, _ in d.eval_batches("test", 7, device=CPU)]
    assert all(torch.equal(a, b) for a, b in zip(e1, e2))
    assert sum(len(x) for x in e1) == len(d.test_x)


def check_reference_domain(d: LoaderDomain, channels: int, size: int, batch: int) -> None:
    assert d.in_shape == [channels, size, size]
    steps = d.steps_per_epoch(batch)
    assert steps >= 2
    full = list(d.pretrain_batches(1, batch, seed=4, device=CPU))
    assert len(full) == steps
    x1, x2 = full[0]
    assert x1.shape == x2.shape == (batch, channels, size, size) and not torch.equal(x1, x2)
    # exact resume: starting at step 1 gives the same batches as the uninterrupted epoch
    resumed = list(d.pretrain_batches(1, batch, seed=4, device=CPU, start_step=1))
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[1:], resumed)
    )
    other = next(d.pretrain_batches(2, batch, seed=4, device=CPU))
    assert not torch.equal(other[0], x1)
    ys = torch.cat([y for _, y in d.eval_batches("test", 5, device=CPU)])
    assert ys.tolist() == list(d.test.labels)
    e1 = torch.cat([x for x, _ in d.eval_batches("test", 5, device=CPU)])
    e2 = torch.cat([x for x, _ in d.eval_batches("test", 5, device=CPU)])
    assert torch.equal(e1, e2)


# ----------------------------------------------------------------------------- CIFAR
@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_device_pipeline(tmp_path: Path, classes: int):
    ref = write_cifar(tmp_path / "c", classes)
    d = I.cifar(str(tmp_path / "c"), classes=classes)
    assert d.num_classes == classes and len(d.train_x) == 40 and len(d.test_x) == 20
    # pickled R/G/B planes decode to the written HWC pixels
    assert torch.equal(d.test_x, torch.from_numpy(ref["xte"]).permute(0, 3, 1, 2))
    assert d.train_y.tolist() == ref["ytr"].tolist()
    check_device_domain(d, 3, 32, 16)
    # evaluation input = (x / 255 - official mean) / official std
    mean = I.CIFAR10_MEAN if classes == 10 else I.CIFAR100_MEAN
    std = I.CIFAR10_STD if classes == 10 else I.CIFAR100_STD
    x, _ = next(d.eval_batches("test", 20, device=CPU))
    want = (
        torch.from_numpy(ref["xte"]).permute(0, 3, 1, 2) / 255 - torch.tensor(mean).view(1, 3, 1, 1)
    ) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, want)


def test_cifar_reference_pipeline_matches_device_eval(tmp_path: Path):
    write_cifar(tmp_path / "c", 10)
    dev = I.cifar(str(tmp_path / "c"))
    ref = I.cifar(str(tmp_path / "c"), pipeline="reference", workers=0)
    assert isinstance(ref, LoaderDomain)
    check_reference_domain(ref, 3, 32, 16)
    a = torch.cat([x for x, _ in dev.eval_batches("test", 8, device=CPU)])
    b = torch.cat([x for x, _ in ref.eval_batches("test", 8, device=CPU)])
    torch.testing.assert_close(a, b)
    # reference views are normalised: roughly centred, not in [0, 1]
    x1, _ = next(ref.pretrain_batches(0, 16, seed=0, device=CPU))
    assert x1.min() < 0


def test_cifar_reference_with_workers(tmp_path: Path):
    write_cifar(tmp_path / "c", 10)
    a = I.cifar(str(tmp_path / "c"), pipeline="reference", workers=0)
    b = I.cifar(str(tmp_path / "c"), pipeline="reference", workers=2)
    x0 = next(a.pretrain_batches(0, 16, seed=2, device=CPU))
    x2 = next(b.pretrain_batches(0, 16, seed=2, device=CPU))
    assert torch.equal(x0[0], x2[0]) and torch.equal(x0[1], x2[1])  # independent of workers


def test_cifar_missing_corrupt_and_bad_pipeline(tmp_path: Path):
    with pytest.raises(
        DataMissingError, match=r"cifar-10-batches-py.*data_batch_1.*cifar-10-python\.tar\.gz"
    ):
        I.cifar(str(tmp_path / "none"))
    write_cifar(tmp_path / "c", 10)
    (tmp_path / "c" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CorruptDataError, match=r"data_batch_3.*pickle"):
        I.cifar(str(tmp_path / "c"))
    write_cifar(tmp_path / "d", 100)
    with pytest.raises(ValueError, match=r"pipeline='gpu'.*device, reference"):
        I.cifar(str(tmp_path / "d"), classes=100, pipeline="gpu")
    with pytest.raises(ValueError, match=r"domain\.root"):
        I.cifar(None)


# ----------------------------------------------------------------------------- STL-10
def test_stl10_binary_splits(tmp_path: Path):
    ref = write_stl(tmp_path / "s")
    d = I.stl10(str(tmp_path / "s"), size=32)
    assert len(d.train_x) == 10 and len(d.test_x) == 8 and len(d.pretrain_x) == 12
    assert d.steps_per_epoch(4) == 3  # pre-training runs over the unlabeled split
    assert torch.equal(d.test_x, torch.from_numpy(ref["x_test"]).permute(0, 3, 1, 2))
    assert d.test_y.tolist() == ref["y_test"].tolist() and d.num_classes == 10
    check_device_domain(d, 3, 32, 4)
    both = I.stl10(str(tmp_path / "s"), pretrain_split="train+unlabeled", size=32)
    assert len(both.pretrain_x) == 22
    assert I.stl10(str(tmp_path / "s"), pretrain_split="train").pretrain_x is None
    ref_d = I.stl10(str(tmp_path / "s"), size=32, pipeline="reference", workers=0)
    check_reference_domain(ref_d, 3, 32, 4)
    assert len(ref_d.pretrain_source) == 12


def test_stl10_missing_and_corrupt(tmp_path: Path):
    with pytest.raises(DataMissingError, match=r"train_X\.bin.*stl10_binary\.tar\.gz"):
        I.stl10(str(tmp_path))
    write_stl(tmp_path / "s")
    p = tmp_path / "s" / "stl10_binary" / "test_X.bin"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(CorruptDataError, match="whole number of 3x96x96"):
        I.stl10(str(tmp_path / "s"))
    write_stl(tmp_path / "t")
    (tmp_path / "t" / "stl10_binary" / "train_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(CorruptDataError, match="2 labels for 10 images"):
        I.stl10(str(tmp_path / "t"))


# ----------------------------------------------------------------------------- Tiny-ImageNet
def test_tiny_imagenet_layout_and_cache(tmp_path: Path, monkeypatch):
    root = tmp_path / "tiny-imagenet-200"
    val_labels = write_tiny(root)
    d = I.tiny_imagenet(str(root))
    assert d.num_classes == 3 and len(d.train_x) == 12 and len(d.test_x) == 6
    assert d.test_y.tolist() == val_labels  # val_annotations.txt honoured
    assert d.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    check_device_domain(d, 3, 64, 4)
    assert (root / "tiny-imagenet-200-uint8.npz").exists()
    calls = []
    real = I._decode
    monkeypatch.setattr(I, "_decode", lambda *a: calls.append(1) or real(*a))
    assert torch.equal(I.tiny_imagenet(str(root)).train_x, d.train_x) and not calls  # cached
    (root / "tiny-imagenet-200-uint8.npz").write_bytes(b"PK\x03\x04 broken")
    assert torch.equal(I.tiny_imagenet(str(root)).train_x, d.train_x) and calls  # rebuilt
    big = I.tiny_imagenet(str(root), size=96)
    assert big.in_shape == [3, 96, 96]
    x1, _ = next(big.pretrain_batches(0, 4, seed=0, device=CPU))
    assert x1.shape == (4, 3, 96, 96)
    check_reference_domain(I.tiny_imagenet(str(root), pipeline="reference", workers=0), 3, 64, 4)


def test_tiny_imagenet_missing_and_bad_annotation(tmp_path: Path):
    with pytest.raises(DataMissingError, match=r"val_annotations\.txt|train/"):
        I.tiny_imagenet(str(tmp_path / "nothing"))
    root = tmp_path / "tiny"
    write_tiny(root)
    with open(root / "val" / "val_annotations.txt", "a") as f:
        f.write("val_9.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(CorruptDataError, match=r"val_annotations.txt:7"):
        I.tiny_imagenet(str(root))
    root2 = tmp_path / "tiny2"
    write_tiny(root2)
    (root2 / "train" / "n01443537" / "images" / "n01443537_0.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptDataError, match="cannot be decoded"):
        I.tiny_imagenet(str(root2))


# ----------------------------------------------------------------------------- Fashion-MNIST
def test_fashion_mnist_idx(tmp_path: Path):
    ref = write_fashion(tmp_path / "fm")
    d = I.fashion_mnist(str(tmp_path / "fm"))
    assert len(d.train_x) == 30 and len(d.test_x) == 12 and d.num_classes == 10
    assert torch.equal(d.train_x[:, 0], torch.from_numpy(ref["xtr"]))
    assert d.test_y.tolist() == ref["yte"].tolist()
    check_device_domain(d, 1, 28, 8)
    sub = I.fashion_mnist(str(tmp_path / "fm"), train_subset=20, test_subset=5)
    assert len(sub.train_x) == 20 and len(sub.test_x) == 5
    check_reference_domain(
        I.fashion_mnist(str(tmp_path / "fm"), pipeline="reference", workers=0), 1, 28, 8
    )


def test_fashion_mnist_missing_and_corrupt(tmp_path: Path):
    with pytest.raises(DataMissingError, match="dataset-fashion-mnist"):
        I.fashion_mnist(str(tmp_path))
    write_fashion(tmp_path / "fm")
    p = tmp_path / "fm" / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(CorruptDataError, match="header says"):
        I.fashion_mnist(str(tmp_path / "fm"))
    p.write_bytes(gzip.compress(b"\x12\x34" + data[2:]))
    with pytest.raises(CorruptDataError, match="magic"):
        I.fashion_mnist(str(tmp_path / "fm"))


# ----------------------------------------------------------------------------- ImageNet folders
def test_imagenet_folder_streaming(tmp_path: Path):
    write_folder(tmp_path / "in", ["n01440764", "n01443537"])
    d = I.imagenet(str(tmp_path / "in"), size=32, resize=36, workers=0)
    assert d.num_classes == 2 and len(d.train) == 6 and len(d.test) == 6
    assert sorted(set(d.train.labels)) == [0, 1]
    check_reference_domain(d, 3, 32, 3)
    x1, _ = next(d.pretrain_batches(0, 3, seed=0, device=CPU))
    assert x1.dtype == torch.float32
    with pytest.raises(ValueError, match="device, reference"):
        I.imagenet(str(tmp_path / "in"), pipeline="dali")


def test_imagenet_hybrid_device_pipeline(tmp_path: Path):
    write_folder(tmp_path / "in", ["n01440764", "n01443537"], per_class=4)
    ref = I.imagenet(str(tmp_path / "in"), size=32, resize=36, workers=0)
    d = I.imagenet(str(tmp_path / "in"), size=32, resize=36, workers=0, pipeline="device")
    assert d.device_augment is not None and d.in_shape == [3, 32, 32]
    full = list(d.pretrain_batches(0, 4, seed=1, device=CPU))
    assert len(full) == 2
    x1, x2 = full[0]
    assert x1.shape == (4, 3, 32, 32) and x1.dtype == torch.float32 and not torch.equal(x1, x2)
    # normalised with the ImageNet statistics: the [0, 1] range maps to [-mean/std, (1-mean)/std]
    lo = -torch.tensor(I.IMAGENET_MEAN) / torch.tensor(I.IMAGENET_STD)
    hi = (1 - torch.tensor(I.IMAGENET_MEAN)) / torch.tensor(I.IMAGENET_STD)
    assert torch.all(x1.amin((0, 2, 3)) >= lo - 1e-4) and torch.all(x1.amax((0, 2, 3)) <= hi + 1e-4)
    resumed = list(d.pretrain_batches(0, 4, seed=1, device=CPU, start_step=1))
    assert torch.equal(resumed[0][0], full[1][0]) and torch.equal(resumed[0][1], full[1][1])
    # with the device ops switched off, a view is the worker's seeded crop, scaled and normalised
    plain = dataclasses.replace(d, device_augment=lambda x, g: x)
    v1, _ = next(plain.pretrain_batches(0, 4, seed=1, device=CPU))
    i0 = int(d.epoch_order(0, 1)[0])
    crop, _ = I.crop_then_device_ops(32, I.ImageAugment(blur=True))
    c = torchvision_seeded(crop)(d.train.load(i0), sample_seed(1, 0, i0, 0))
    assert c.dtype == torch.uint8 and c.shape == (3, 32, 32)
    torch.testing.assert_close(
        v1[0], A.Normalize(I.IMAGENET_MEAN, I.IMAGENET_STD)(c[None] / 255.0)[0]
    )
    e1 = torch.cat([x for x, _ in d.eval_batches("test", 4, device=CPU)])
    e2 = torch.cat([x for x, _ in ref.eval_batches("test", 4, device=CPU)])
    assert torch.equal(e1, e2)


def test_imagenet100_class_list(tmp_path: Path):
    shipped = I.read_class_list(I.IMAGENET100_CLASSES)
    assert len(shipped) == 100 and shipped[0] == "n02869837" and shipped[-1] == "n02090622"
    write_folder(tmp_path / "in", ["n01440764", "n01443537", "n02869837"], per_class=2)
    lst = tmp_path / "two.txt"
    lst.write_text("n02869837\nn01440764\n")
    d = I.imagenet100(str(tmp_path / "in"), class_list=str(lst), size=32, resize=36, workers=0)
    assert d.num_classes == 2 and len(d.train) == 4
    assert all("n01443537" not in p for p in d.train.paths)
    with pytest.raises(CorruptDataError, match="99 classes of the class list are missing"):
        I.imagenet100(str(tmp_path / "in"), workers=0)  # the shipped list needs all 100
    lst.write_text("n02869837\nbanana\n")
    with pytest.raises(CorruptDataError, match="WordNet ids"):
        I.imagenet100(str(tmp_path / "in"), class_list=str(lst))
    with pytest.raises(DataMissingError, match="ImageFolder layout"):
        I.imagenet(str(tmp_path / "empty"))


def _view_stats(d, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs = torch.cat([torch.cat([a, b]) for a, b in d.pretrain_batches(0, batch, seed=0, device=CPU)])
    edge = (xs[..., :, 1:] - xs[..., :, :-1]).abs().mean()  # smoothness (crop scale, blur)
    return xs.mean((0, 2, 3)), xs.std((0, 2, 3)), edge


def test_device_and_reference_views_have_the_same_statistics(tmp_path: Path):
    """The batched device ops and the torchvision pipeline draw from the same distribution."""
    write_cifar(tmp_path / "c", 10, n_train=256)
    dev = _view_stats(I.cifar(str(tmp_path / "c")), 128)
    ref = _view_stats(I.cifar(str(tmp_path / "c"), pipeline="reference", workers=0), 128)
    for a, b in zip(dev, ref):
        torch.testing.assert_close(a, b, atol=0.06, rtol=0)


def test_reference_ranks_split_the_global_batch(tmp_path: Path):
    """Per-sample seeds do not depend on the rank: two ranks together see the one-rank batch."""
    write_cifar(tmp_path / "c", 10)
    d = I.cifar(str(tmp_path / "c"), pipeline="reference", workers=0)
    whole = next(d.pretrain_batches(0, 16, seed=3, device=CPU))
    parts = [
        next(d.pretrain_batches(0, 16, seed=3, device=CPU, rank=r, world_size=2)) for r in (0, 1)
    ]
    assert d.steps_per_epoch(16, 2) == d.steps_per_epoch(16) == 2
    for v in (0, 1):
        assert torch.equal(torch.cat([parts[0][v], parts[1][v]]), whole[v])


def test_both_pipelines_give_memory_bank_indices_in_the_same_order(tmp_path: Path):
    write_cifar(tmp_path / "c", 10)
    dev = I.cifar(str(tmp_path / "c"))
    ref = I.cifar(str(tmp_path / "c"), pipeline="reference", workers=0)
    assert dev.num_pretrain == ref.num_pretrain == 40
    order = dev.epoch_order(1, 3)
    for dom in (dev, ref):
        got = [
            b[2]
            for b in dom.pretrain_batches(1, 16, seed=3, device=CPU, with_index=True, start_step=1)
        ]
        assert [g.tolist() for g in got] == [order[16:32].tolist()]  # 2 steps of 16: the second
        x1, _, idx = next(dom.pretrain_batches(1, 16, seed=3, device=CPU, with_index=True))
        assert idx.dtype == torch.long and x1.shape[0] == idx.shape[0] == 16


def test_insdis_trains_on_the_reference_pipeline(tmp_path: Path):
    from imix_sweeps.backbones import small_cnn
    from imix_sweeps.mix import MixStrategy
    from imix_sweeps.train import TrainSpec, train
    from tests.method_yaml import insdis

    write_cifar(tmp_path / "c", 10)
    ref = I.cifar(str(tmp_path / "c"), pipeline="reference", workers=0)
    model = insdis(
        small_cnn(ref.in_shape, width=4), MixStrategy(), dim=8, num_negatives=16, loss="softmax"
    )
    out = train(
        model,
        ref,
        TrainSpec(epochs=1, batch_size=16, warmup_epochs=0, amp=False),
        tmp_path / "run",
        device=CPU,
    )
    assert out.epochs_done == 1 and out.final_loss is not None and np.isfinite(out.final_loss)


def test_imagenet_class_ratio_is_imix_seeded_subset(tmp_path: Path):
    import random

    wnids = [f"n{1440764 + 7 * i:08d}" for i in range(20)]
    write_folder(tmp_path / "in", wnids, per_class=1)
    # the official draw: Python's random seeded with -1, a sample of round(20 x 0.1) of the
    # sorted names, sorted (kibok90/imix folder.py L136-141)
    state = random.getstate()
    random.seed(-1)
    expected = sorted(random.sample(sorted(wnids), 2))
    random.setstate(state)
    assert I.imix_class_subset(wnids, 0.1) == expected
    assert I.imix_class_subset(wnids, 1.0) == sorted(wnids)
    d = I.imagenet(str(tmp_path / "in"), size=32, resize=36, workers=0, class_ratio=0.1)
    assert d.num_pretrain == 2 and all(any(w in p for w in expected) for p in d.pretrain.paths)
    assert d.num_classes == 20 and len(d.train) == 20  # evaluation keeps every class
    with pytest.raises(ValueError, match="class_ratio"):
        I.imix_class_subset(wnids, 0.0)
