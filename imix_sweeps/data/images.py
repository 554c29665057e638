"""Image domains read from their distributed on-disk formats.

| domain | ``root`` holds | splits |
|---|---|---|
| ``cifar10`` | ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python pickles) | 50k / 10k |
| ``cifar100`` | ``cifar-100-python/{train,test}`` (python pickles, fine labels) | 50k / 10k |
| ``stl10`` | ``stl10_binary/{train,test,unlabeled}_X.bin``, ``{train,test}_y.bin`` | 100k unlabeled (pre-train), 5k / 8k |
| ``tiny_imagenet`` | ``train/<wnid>/images/*.JPEG``, ``val/images`` + ``val/val_annotations.txt``, ``wnids.txt`` | 100k / 10k |
| ``fashion_mnist`` | ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` | 60k / 10k |
| ``imagenet`` | ``train/n01440764/*.JPEG``, ``val/n01440764/*.JPEG`` (ImageFolder) | streamed |
| ``imagenet100`` | the same, restricted to the classes of a class-list file | streamed |

``pipeline``: ``device`` holds the dataset as a uint8 tensor and augments whole batches on the
training device (``imix_sweeps.augment``); ``reference`` runs the official torchvision
transforms on PIL images in DataLoader workers (``imix_sweeps.data.loader``). ImageNet folders
only stream (``reference``).

Augmentation (official i-Mix / MoCo v2, the domains' default): RandomResizedCrop(size, scale
0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2, [Gaussian blur sigma 0.1-2
with p 0.5: 224 px pipelines], horizontal flip, then normalisation with the dataset's mean/std.
The ``augment`` config group overrides any of these per run (``ImageAugment``), in both
pipelines.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from imix_sweeps import augment as A
from imix_sweeps.data.base import InMemoryDomain, require
from imix_sweeps.data.cache import CorruptDataError, cached_arrays
from imix_sweeps.data.loader import (
    ArraySource,
    FileSource,
    LoaderDomain,
    check_pipeline,
    root_path,
    torchvision_seeded,
)

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The constants of the official i-Mix code (main_pretext.py).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2009, 0.1984, 0.2023)
JITTER = (0.4, 0.4, 0.4, 0.1)
PIPELINES = ("device", "reference")

IMAGENET100_CLASSES = Path(__file__).with_name("imagenet100.txt")


# ----------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class ImageAugment:
    """One view's image augmentation, in torchvision's order: RandomResizedCrop(size, scale) ->
    [RandomGrayscale(p_gray) if gray_first] -> RandomApply(ColorJitter(*jitter), p_jitter) ->
    [RandomGrayscale(p_gray)] -> [RandomApply(GaussianBlur(0.1-2), 0.5) if blur] -> flip.
    ``jitter=None``: no colour jitter. The field defaults are the MoCo v2 pipeline."""

    scale: tuple[float, float] = (0.2, 1.0)
    jitter: tuple[float, float, float, float] | None = JITTER
    p_jitter: float = 0.8
    p_gray: float = 0.2
    gray_first: bool = False
    blur: bool = False


AUGMENT_KEYS = ("size", "crop_scale", "jitter", "p_jitter", "p_gray", "gray_first", "blur")


def resolve_augment(
    size: int,
    scale: Sequence[float],
    blur: bool,
    overrides: Mapping[str, Any] | None,
) -> tuple[int, ImageAugment]:
    """``(size, ImageAugment)``: the domain's own (``size``, crop ``scale``, ``blur``, MoCo v2
    colour) with the non-null entries of ``overrides`` (the ``augment`` config group) on top."""
    o = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(o) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"unknown image augmentation options {unknown}; allowed: {AUGMENT_KEYS}")
    aug = ImageAugment(scale=(float(scale[0]), float(scale[1])), blur=bool(blur))
    if "crop_scale" in o:
        aug = replace(aug, scale=(float(o["crop_scale"][0]), float(o["crop_scale"][1])))
    if "jitter" in o:
        j = o["jitter"]
        if len(j) not in (0, 4):
            raise ValueError(f"augment.jitter takes 4 strengths or [] (none), not {list(j)}")
        aug = replace(aug, jitter=tuple(float(v) for v in j) if len(j) else None)
    for key in ("p_jitter", "p_gray"):
        if key in o:
            aug = replace(aug, **{key: float(o[key])})
    for key in ("gray_first", "blur"):
        if key in o:
            aug = replace(aug, **{key: bool(o[key])})
    return int(o.get("size", size)), aug


def device_augment(
    size: int, aug: ImageAugment = ImageAugment()
) -> Callable[[Tensor, torch.Generator], Tensor]:
    """``aug`` as batched ops on ``[B, C, H, W]`` in [0, 1] (``imix_sweeps.augment``; the MoCo
    v2 order through ``contrastive_views``)."""
    jitter = aug.jitter if aug.jitter is not None else (0.0, 0.0, 0.0, 0.0)
    p_jitter = aug.p_jitter if aug.jitter is not None else 0.0
    blur = (0.1, 2.0) if aug.blur else None

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        if not aug.gray_first:
            return A.contrastive_views(
                x, size, generator=g, scale=aug.scale, jitter=jitter, p_jitter=p_jitter,
                p_gray=aug.p_gray, blur=blur,
            )  # fmt: skip
        # grayscale before the jitter (the CMC repository's InsDis/MoCo pipeline); the flip is
        # folded into the crop as in contrastive_views
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        x = A.random_resized_crop(x, size, scale=aug.scale, generator=g, hflip=flip)
        x = A.random_grayscale(x, aug.p_gray, generator=g, inplace=True)
        if p_jitter > 0:
            x = A.color_jitter(x, *jitter, p=p_jitter, generator=g)
        if blur is not None:
            x = A.gaussian_blur(x, blur, 0.5, generator=g)
        return x

    return augment


class PILGaussianBlur:
    """MoCo v2's blur: ``ImageFilter.GaussianBlur(radius=sigma)``, sigma ~ U(sigma) via ``random``."""

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, img):
        from PIL import ImageFilter

        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def reference_augment(
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    aug: ImageAugment = ImageAugment(),
):
    """``aug`` as the official torchvision pipeline on PIL images (seeded per sample by the
    caller)."""
    import torchvision.transforms as T

    gray = T.RandomGrayscale(p=aug.p_gray)
    ts: list = [T.RandomResizedCrop(size, scale=tuple(aug.scale))]
    if aug.gray_first:
        ts.append(gray)
    if aug.jitter is not None:
        ts.append(T.RandomApply([T.ColorJitter(*aug.jitter)], p=aug.p_jitter))
    if not aug.gray_first:
        ts.append(gray)
    if aug.blur:
        ts.append(T.RandomApply([PILGaussianBlur((0.1, 2.0))], p=0.5))
    ts += [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ts)


def linear_crop_padding(size: int) -> int:
    """Padding of the official linear evaluation's RandomCrop: 4 at 32 px (imix main_lincls.py
    L362-366, the only small-image case there), the same eighth of the side at other sizes."""
    return max(size // 8, 1)


def device_linear_augment(size: int) -> Callable[[Tensor, torch.Generator], Tensor]:
    """The official linear evaluation's training augmentation for small images, batched:
    RandomCrop(size, padding) with zero padding, then a horizontal flip."""
    pad = linear_crop_padding(size)

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        x = A.random_crop_padded(x, size, pad, generator=g)
        return A.random_hflip(x, generator=g)

    return augment


def reference_linear(size: int, mean: Sequence[float], std: Sequence[float], resize: bool = False):
    """The same on PIL images (torchvision), ``resize``: to ``size`` first (resized domains)."""
    import torchvision.transforms as T

    ts = [T.Resize((size, size))] if resize else []
    ts += [
        T.RandomCrop(size, padding=linear_crop_padding(size)),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean, std),
    ]
    return T.Compose(ts)


def reference_eval(
    mean: Sequence[float], std: Sequence[float], size: int | None = None, resize: int | None = None
):
    import torchvision.transforms as T

    ts = []
    if resize:
        ts.append(T.Resize(resize))
    if size:
        ts.append(T.CenterCrop(size) if resize else T.Resize((size, size)))
    return T.Compose([*ts, T.ToTensor(), T.Normalize(mean, std)])


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean/std in [0, 1] of uint8 ``[N, H, W, C]`` images."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return x.mean(0).tolist(), x.std(0).tolist()


def image_domain(
    name: str,
    num_classes: int,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    size: int,
    pipeline: str,
    scale: Sequence[float] = (0.2, 1.0),
    blur: bool = False,
    pretrain: np.ndarray | None = None,
    workers: int = 4,
    augment: Mapping[str, Any] | None = None,
) -> InMemoryDomain | LoaderDomain:
    """An image domain from uint8 ``[N, H, W, C]`` arrays, with either pipeline; ``augment``:
    the ``augment`` config group's overrides of ``size``, ``scale`` and ``blur`` and the rest
    (``resolve_augment``)."""
    check_pipeline(pipeline, PIPELINES, name)
    native = xtr.shape[1]
    size, aug = resolve_augment(size, scale, blur, augment)
    if pipeline == "reference":
        return LoaderDomain(
            name=name,
            modality="image",
            num_classes=num_classes,
            train=ArraySource(xtr, ytr.tolist()),
            test=ArraySource(xte, yte.tolist()),
            pretrain=None if pretrain is None else ArraySource(pretrain, [-1] * len(pretrain)),
            train_transform=torchvision_seeded(reference_augment(size, mean, std, aug)),
            eval_transform=reference_eval(mean, std, size=size if size != native else None),
            workers=workers,
            input_stats=(list(mean), list(std)),
            linear_transform=torchvision_seeded(
                reference_linear(size, mean, std, resize=size != native)
            ),
        )

    def nchw(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))

    def eval_transform(x: Tensor) -> Tensor:
        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)

    return InMemoryDomain(
        name=name,
        modality="image",
        num_classes=num_classes,
        train_x=nchw(xtr),
        train_y=torch.from_numpy(ytr.astype(np.int64)),
        test_x=nchw(xte),
        test_y=torch.from_numpy(yte.astype(np.int64)),
        pretrain_x=None if pretrain is None else nchw(pretrain),
        augment=device_augment(size, aug),
        normalize=A.Normalize(mean, std),
        eval_transform=eval_transform,
        input_stats=(list(mean), list(std)),
        linear_augment=device_linear_augment(size),
    )


# ----------------------------------------------------------------------------- CIFAR
def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as e:
        raise CorruptDataError(f"{path}: not a readable CIFAR python pickle ({e})") from e


def read_cifar(root: str | Path, classes: int) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)``, images uint8 ``[N, 32, 32, 3]``."""
    sub = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    root = Path(root)
    base = root if root.name == sub else root / sub
    files = (
        ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
        if classes == 10
        else (["train"], ["test"])
    )
    key = "labels" if classes == 10 else "fine_labels"
    how = (
        f"{root}/{sub}/ with "
        + ", ".join(files[0] + files[1])
        + f" (torchvision's CIFAR-{classes} python version: "
        + f"https://www.cs.toronto.edu/~kriz/cifar-{classes}-python.tar.gz, extracted)"
    )
    out = []
    for names in files:
        xs, ys = [], []
        for n in names:
            p = require(base / n, f"CIFAR-{classes} batch {n}", how)
            d = _unpickle(p)
            if not isinstance(d, dict) or "data" not in d or key not in d:
                raise CorruptDataError(f"{p}: a CIFAR-{classes} batch needs 'data' and {key!r}")
            x = np.asarray(d["data"], dtype=np.uint8)
            y = np.asarray(d[key], dtype=np.int64)
            if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
                raise CorruptDataError(
                    f"{p}: expected data [N, 3072] and N labels, got {list(x.shape)} and {len(y)}"
                )
            if y.min() < 0 or y.max() >= classes:
                raise CorruptDataError(f"{p}: labels outside 0..{classes - 1}")
            xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(y)
        out += [np.concatenate(xs), np.concatenate(ys)]
    return tuple(out)


def cifar(
    root: str,
    classes: int = 10,
    pipeline: str = "device",
    workers: int = 4,
    blur: bool = False,
    augment: Mapping[str, Any] | None = None,
    size: int = 32,
) -> InMemoryDomain | LoaderDomain:
    """CIFAR-10/100; ``size``: the pre-training crop (32: i-Mix main_pretext.py L462)."""
    xtr, ytr, xte, yte = read_cifar(root_path(root, f"cifar{classes}"), classes)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if classes == 10 else (CIFAR100_MEAN, CIFAR100_STD)
    return image_domain(
        f"cifar{classes}", classes, xtr, ytr, xte, yte,
        mean=mean, std=std, size=size, pipeline=pipeline, blur=blur, workers=workers,
        augment=augment,
    )  # fmt: skip


# ----------------------------------------------------------------------------- STL-10
def _stl_images(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % (3 * 96 * 96):
        raise CorruptDataError(
            f"{path}: {raw.size} bytes is not a whole number of 3x96x96 STL-10 images"
        )
    # column-major per image, as distributed (torchvision transposes the same way)
    return raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)


def _stl_labels(path: Path, n: int) -> np.ndarray:
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    if len(y) != n:
        raise CorruptDataError(f"{path}: {len(y)} labels for {n} images")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise CorruptDataError(f"{path}: labels must be 1..10")
    return y


def stl10(
    root: str,
    pretrain_split: str = "unlabeled",
    size: int = 96,
    pipeline: str = "device",
    blur: bool = True,
    workers: int = 4,
    augment: Mapping[str, Any] | None = None,
) -> InMemoryDomain | LoaderDomain:
    """STL-10 binaries; pre-trains on ``unlabeled`` (or ``train``, ``train+unlabeled``)."""
    root = root_path(root, "stl10")
    base = root if root.name == "stl10_binary" else root / "stl10_binary"
    how = (
        f"{root}/stl10_binary/ with train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
        "unlabeled_X.bin (https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz, extracted)"
    )
    xtr = _stl_images(require(base / "train_X.bin", "STL-10 train_X.bin", how))
    ytr = _stl_labels(require(base / "train_y.bin", "STL-10 train_y.bin", how), len(xtr))
    xte = _stl_images(require(base / "test_X.bin", "STL-10 test_X.bin", how))
    yte = _stl_labels(require(base / "test_y.bin", "STL-10 test_y.bin", how), len(xte))
    if pretrain_split not in ("unlabeled", "train", "train+unlabeled"):
        raise ValueError(
            f"stl10 pretrain_split must be unlabeled, train or train+unlabeled, not {pretrain_split!r}"
        )
    pre = None
    if "unlabeled" in pretrain_split:
        un = _stl_images(require(base / "unlabeled_X.bin", "STL-10 unlabeled_X.bin", how))
        pre = un if pretrain_split == "unlabeled" else np.concatenate([xtr, un])
    mean, std = channel_stats(xtr)
    return image_domain(
        "stl10", 10, xtr, ytr, xte, yte, mean=mean, std=std, size=size,
        pipeline=pipeline, blur=blur, pretrain=pre, workers=workers, augment=augment,
    )  # fmt: skip


# ----------------------------------------------------------------------------- Tiny-ImageNet
def _decode(paths: Sequence[Path], size: int) -> np.ndarray:
    from PIL import Image

    from imix_sweeps.progress import progress

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(
        progress(paths, "decoding images (once, then cached)", total=len(paths), unit="img")
    ):
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                out[i] = np.asarray(im)
        except Exception as e:
            raise CorruptDataError(f"{p}: cannot be decoded as an image ({e})") from e
    return out


def tiny_imagenet_files(
    root: Path,
) -> tuple[list[str], list[Path], list[int], list[Path], list[int]]:
    """``(wnids, train paths, train labels, val paths, val labels)`` of the official layout."""
    how = (
        f"{root}/ as in tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip): "
        "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt"
    )
    train_dir = require(root / "train", "Tiny-ImageNet train/", how)
    ann = require(root / "val" / "val_annotations.txt", "Tiny-ImageNet val_annotations.txt", how)
    wfile = root / "wnids.txt"
    if wfile.exists():
        wnids = [w.strip() for w in wfile.read_text().split() if w.strip()]
    else:
        wnids = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    wnids = sorted(wnids)
    index = {w: i for i, w in enumerate(wnids)}
    tr_p, tr_y = [], []
    for w in wnids:
        files = sorted((train_dir / w / "images").glob("*.JPEG"))
        if not files:
            raise CorruptDataError(f"{train_dir / w / 'images'}: no .JPEG files for class {w}")
        tr_p += files
        tr_y += [index[w]] * len(files)
    va_p, va_y = [], []
    for ln, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index:
            raise CorruptDataError(
                f"{ann}:{ln}: expected '<file>\\t<wnid>\\t<box>', with a wnid of the train classes; got {line!r}"
            )
        p = root / "val" / "images" / parts[0]
        require(p, "Tiny-ImageNet validation image", how)
        va_p.append(p)
        va_y.append(index[parts[1]])
    return wnids, tr_p, tr_y, va_p, va_y


def tiny_imagenet(
    root: str,
    size: int = 64,
    pipeline: str = "device",
    blur: bool = True,
    workers: int = 4,
    augment: Mapping[str, Any] | None = None,
) -> InMemoryDomain | LoaderDomain:
    """Tiny-ImageNet (200 classes, 64 px); the official ``val`` split is the test split.

    Decoded once into ``<root>/tiny-imagenet-200-uint8.npz``. MixCo resized crops to 224:
    ``domain.data.size=224``."""
    root = root_path(root, "tiny_imagenet")
    wnids, tr_p, tr_y, va_p, va_y = tiny_imagenet_files(root)

    def build() -> dict[str, np.ndarray]:
        return {
            "x_train": _decode(tr_p, 64),
            "y_train": np.asarray(tr_y, dtype=np.int64),
            "x_test": _decode(va_p, 64),
            "y_test": np.asarray(va_y, dtype=np.int64),
        }

    sources = [root / "val" / "val_annotations.txt"]
    key = f"tiny-v1:{len(wnids)}:{len(tr_p)}:{len(va_p)}"
    a = cached_arrays(root / "tiny-imagenet-200-uint8.npz", build, sources, key=key)
    mean, std = channel_stats(a["x_train"])
    return image_domain(
        "tiny_imagenet", len(wnids), a["x_train"], a["y_train"], a["x_test"], a["y_test"],
        mean=mean, std=std, size=size, pipeline=pipeline, blur=blur, workers=workers,
        augment=augment,
    )  # fmt: skip


# ----------------------------------------------------------------------------- Fashion-MNIST
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise CorruptDataError(f"{path}: cannot be read ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise CorruptDataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4).tolist()
    dtype = np.dtype(IDX_DTYPES[data[2]])
    n = int(np.prod(dims)) if dims else 0
    body = data[4 + 4 * ndim :]
    if len(body) != n * dtype.itemsize:
        raise CorruptDataError(
            f"{path}: header says {dims} ({n * dtype.itemsize} bytes), file has {len(body)} bytes"
        )
    return np.frombuffer(body, dtype=dtype).reshape(dims).copy()


def _idx_file(root: Path, stem: str) -> Path:
    for p in (root / stem, root / f"{stem}.gz"):
        if p.exists():
            return p
    return require(
        root / f"{stem}.gz",
        f"Fashion-MNIST {stem}",
        f"{root}/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte (gzipped or not), as distributed by zalandoresearch/fashion-mnist; "
        "Debian's dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist",
    )


def read_fashion_mnist(root: str | Path) -> tuple[np.ndarray, ...]:
    root = Path(root)
    out = []
    for split in ("train", "t10k"):
        x = read_idx(_idx_file(root, f"{split}-images-idx3-ubyte"))
        y = read_idx(_idx_file(root, f"{split}-labels-idx1-ubyte")).astype(np.int64)
        if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y):
            raise CorruptDataError(
                f"{root}: {split} images {list(x.shape)} and labels {list(y.shape)} do not match"
            )
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise CorruptDataError(f"{root}: {split} labels outside 0..9")
        out += [x[..., None], y]
    return tuple(out)


def fashion_mnist(
    root: str,
    pipeline: str = "device",
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    crop_scale: Sequence[float] = (0.2, 1.0),
    workers: int = 4,
    augment: Mapping[str, Any] | None = None,
) -> InMemoryDomain | LoaderDomain:
    """Fashion-MNIST 1x28x28; ``train_subset``/``test_subset``: seeded subsets for quick runs."""
    xtr, ytr, xte, yte = read_fashion_mnist(root_path(root, "fashion_mnist"))
    rng = np.random.RandomState(subset_seed)
    if train_subset:
        i = np.sort(rng.choice(len(xtr), min(train_subset, len(xtr)), replace=False))
        xtr, ytr = xtr[i], ytr[i]
    if test_subset:
        i = np.sort(rng.choice(len(xte), min(test_subset, len(xte)), replace=False))
        xte, yte = xte[i], yte[i]
    mean, std = channel_stats(xtr)
    return image_domain(
        "fashion_mnist", 10, xtr, ytr, xte, yte, mean=mean, std=std, size=28,
        pipeline=pipeline, scale=crop_scale, workers=workers, augment=augment,
    )  # fmt: skip


# ----------------------------------------------------------------------------- ImageNet folders
def read_class_list(path: str | Path) -> list[str]:
    p = require(
        Path(path), "class-list file", "a text file with one WordNet id (e.g. n02869837) per line"
    )
    wnids = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    bad = [w for w in wnids if not (w.startswith("n") and w[1:].isdigit())]
    if bad or len(set(wnids)) != len(wnids):
        raise CorruptDataError(f"{p}: expected unique WordNet ids, got {bad[:3] or 'duplicates'}")
    return wnids


def imix_class_subset(classes: Sequence[str], ratio: float) -> list[str]:
    """i-Mix's ``--class-ratio`` (kibok90/imix ``folder.py`` L136-141): ``round(n x ratio)`` of
    the sorted class names drawn by Python's ``random.sample`` seeded with -1, then sorted."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"class_ratio must be in (0, 1]; got {ratio}")
    ordered = sorted(classes)
    if ratio == 1.0:
        return ordered
    return sorted(random.Random(-1).sample(ordered, round(len(ordered) * ratio)))


def image_folder(
    split_dir: Path, classes: Sequence[str] | None, how: str
) -> tuple[FileSource, int]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    require(split_dir, f"ImageNet {split_dir.name}/", how)
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if classes is None:
        classes = found
    missing = sorted(set(classes) - set(found))
    if missing:
        raise CorruptDataError(
            f"{split_dir}: {len(missing)} classes of the class list are missing, e.g. {missing[:3]}"
        )
    if not classes:
        raise CorruptDataError(f"{split_dir}: no class folders")
    index = {c: i for i, c in enumerate(sorted(classes))}
    samples = make_dataset(str(split_dir), index, extensions=IMG_EXTENSIONS)
    return FileSource([p for p, _ in samples], [y for _, y in samples]), len(index)


def crop_then_device_ops(size: int, aug: ImageAugment = ImageAugment(blur=True)):
    """The hybrid split of ``aug``: ``(per-sample PIL crop to uint8, batched rest)``."""
    import torchvision.transforms as T

    crop = T.Compose([T.RandomResizedCrop(size, scale=tuple(aug.scale)), T.PILToTensor()])

    def rest(x: Tensor, g: torch.Generator) -> Tensor:
        if aug.gray_first:
            x = A.random_grayscale(x, aug.p_gray, generator=g)
        if aug.jitter is not None:
            x = A.color_jitter(x, *aug.jitter, p=aug.p_jitter, generator=g)
        if not aug.gray_first:
            x = A.random_grayscale(x, aug.p_gray, generator=g)
        if aug.blur:
            x = A.gaussian_blur(x, (0.1, 2.0), 0.5, generator=g)
        return A.random_hflip(x, generator=g)

    return crop, rest


def imagenet_linear(size: int = 224):
    """The official ImageNet linear evaluation's training transform (imix main_lincls.py
    L349-356): RandomResizedCrop(size) (scale 0.08-1), flip, normalisation."""
    import torchvision.transforms as T

    return T.Compose([
        T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


def imagenet(
    root: str,
    class_list: str | None = None,
    size: int = 224,
    resize: int = 256,
    blur: bool = True,
    pipeline: str = "reference",
    workers: int = 8,
    name: str = "imagenet",
    class_ratio: float = 1.0,
    augment: Mapping[str, Any] | None = None,
) -> LoaderDomain:
    """ImageNet in ImageFolder layout, streamed by DataLoader workers with the MoCo v2 pipeline.

    ``pipeline``: ``reference`` runs all of it on PIL images in the workers; ``device`` has the
    workers decode and RandomResizedCrop only (uint8 crops, pinned), and runs colour jitter,
    grayscale, blur and flip batched on the training device.
    ``class_list``: a file of WordNet ids selecting a subset (``imagenet100``: the CMC list).
    ``class_ratio`` < 1: pre-training sees only i-Mix's seeded class subset (``--class-ratio``,
    ``imix_class_subset``); the evaluation splits keep every class, as the official linear
    evaluation (``--eval-class-ratio`` 1, ``main_pretext.py`` L140, L865-872)."""
    check_pipeline(pipeline, PIPELINES, name)
    root = root_path(root, name)
    how = (
        f"{root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG (ImageFolder layout; "
        "the validation images sorted into class folders, e.g. with valprep.sh)"
    )
    classes = None if class_list is None else read_class_list(class_list)
    train, num_classes = image_folder(root / "train", classes, how)
    test, test_classes = image_folder(root / "val", classes, how)
    if test_classes != num_classes:
        raise CorruptDataError(
            f"{root}: train/ has {num_classes} class folders but val/ has {test_classes}"
        )
    pretrain = None
    if class_ratio != 1.0:
        found = classes or sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        pretrain, _ = image_folder(root / "train", imix_class_subset(found, class_ratio), how)
    size, aug = resolve_augment(size, (0.2, 1.0), blur, augment)
    hybrid: dict = {}
    if pipeline == "device":
        crop, rest = crop_then_device_ops(size, aug)
        train_transform = torchvision_seeded(crop)
        hybrid = {"device_augment": rest, "normalize": A.Normalize(IMAGENET_MEAN, IMAGENET_STD)}
    else:
        train_transform = torchvision_seeded(
            reference_augment(size, IMAGENET_MEAN, IMAGENET_STD, aug)
        )
    return LoaderDomain(
        name=name,
        modality="image",
        num_classes=num_classes,
        train=train,
        test=test,
        pretrain=pretrain,
        train_transform=train_transform,
        eval_transform=reference_eval(IMAGENET_MEAN, IMAGENET_STD, size=size, resize=resize),
        workers=workers,
        input_stats=(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        linear_transform=torchvision_seeded(imagenet_linear(size)),
        **hybrid,
    )


def imagenet100(root: str, class_list: str | None = None, **kw) -> LoaderDomain:
    """ImageNet-100: the 100 classes of CMC's ``imagenet100.txt`` (shipped with this package)."""
    return imagenet(
        root, class_list=class_list or str(IMAGENET100_CLASSES), name="imagenet100", **kw
    )


# its keyword options (and their defaults) are imagenet's: inspect.signature reports those
imagenet100.__wrapped__ = imagenet  # type: ignore[attr-defined]
