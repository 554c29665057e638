"""The benchmark's CIFAR-10 files: the official python-pickle format, real or synthetic, and the
constants of the projected epoch."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # official i-Mix constants
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
EPOCH_IMAGES = 50_000
TEST_IMAGES = 10_000


# ----------------------------------------------------------------------------- CIFAR-10 files
def write_synthetic_cifar10(
    root: Path, n_train: int = EPOCH_IMAGES, n_test: int = TEST_IMAGES, seed: int = 0
) -> Path:
    """Write a synthetic CIFAR-10 in the python-pickle format under ``root/cifar-10-batches-py``:
    five ``data_batch_*`` files and ``test_batch`` (dicts with ``data`` uint8 ``[n, 3072]``, rows
    are the R, G, B planes of a 32x32 image, ``labels``, ``filenames``, ``batch_label``) and
    ``batches.meta`` (``label_names``, ``num_cases_per_batch``, ``num_vis``). The images are
    smooth random colour fields (upsampled 4x4 noise plus a little pixel noise), so crops,
    colour jitter and blur all change them. Returns ``root``."""
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def images(n: int) -> np.ndarray:
        coarse = torch.from_numpy(rng.random((n, 3, 4, 4), dtype=np.float32))
        fine = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear")
        fine = fine + 0.05 * torch.from_numpy(rng.standard_normal((n, 3, 32, 32), np.float32))
        return (fine.clamp(0, 1) * 255).round().to(torch.uint8).reshape(n, 3072).numpy()

    def dump(name: str, n: int, label: str, offset: int) -> None:
        entry = {
            "batch_label": label,
            "labels": rng.integers(0, 10, n).tolist(),
            "data": images(n),
            "filenames": [f"synthetic_{offset + i:06d}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    per = -(-n_train // 5)
    for i in range(5):
        lo, hi = i * per, min((i + 1) * per, n_train)
        dump(f"data_batch_{i + 1}", hi - lo, f"training batch {i + 1} of 5", lo)
    dump("test_batch", n_test, "testing batch 1 of 1", n_train)
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": per, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


def _cifar_class(checked: bool):
    from torchvision.datasets import CIFAR10

    if checked:
        return CIFAR10

    class SyntheticCIFAR10(CIFAR10):
        """The stock reader; only the MD5 comparison with the official files is skipped."""

        def _check_integrity(self) -> bool:
            return all(
                (Path(self.root) / self.base_folder / name).is_file()
                for name, _ in self.train_list + self.test_list
            )

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return SyntheticCIFAR10


def cifar_root(path: Path) -> Path:
    """Accept the folder holding ``cifar-10-batches-py`` or that folder itself."""
    path = Path(path)
    if (path / CIFAR_FOLDER).is_dir():
        return path
    if path.name == CIFAR_FOLDER and path.is_dir():
        return path.parent
    raise FileNotFoundError(
        f"no CIFAR-10 python folder at {path}: expected {path / CIFAR_FOLDER}/ with data_batch_1..5, "
        "test_batch and batches.meta (the 'CIFAR-10 python version' archive, extracted)"
    )


def load_cifar10(root: Path, *, checked: bool, train: bool, transform=None):
    cls = _cifar_class(checked)
    try:
        return cls(str(root), train=train, transform=transform, download=False)
    except RuntimeError as e:
        raise RuntimeError(f"cannot read CIFAR-10 from {root / CIFAR_FOLDER}: {e}") from e
