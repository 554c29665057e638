"""The reported numbers, mapped onto the config tree: one table cell per CSV row.

``results/reported/reported_top1.csv`` is the single source (read, never edited here). Each
row becomes a *cell* that runs are matched to by config values, never by directory names:

| cell field   | from the CSV                                  | matched against (results.json) |
|--------------|-----------------------------------------------|--------------------------------|
| `domain`     | `dataset` (same names)                         | `domain`                       |
| `backbone`   | `backbone` via ``BACKBONES``                   | `backbone`                     |
| `method`     | `method` (``METHODS`` lists those with no config) | `method`                    |
| `mix`        | `mix` (same names)                             | `mix`                          |
| `epochs`     | `epochs`; empty for i-Mix Table 1 -> ``IMIX_T1_EPOCHS`` (run.sh) | `epochs`     |
| `batch_size` | the table's setting, ``TABLE_BATCH``           | `batch_size` (global)          |
| `eval`       | `eval`: `linear` / `pinv` -> `linear_top1` of runs with that `eval`; `knn` -> `knn_top1` of any run | |
| `variant`    | parsed from `notes` (``variant_of``)           | `symmetric`, `queue_size`, `loss` |

Rows no config can run are kept (shown in tables, listed by ``summary``) with ``why_not``.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis import REPORTED_CSV

CSV_COLUMNS = (
    "paper",
    "table",
    "dataset",
    "backbone",
    "method",
    "mix",
    "epochs",
    "eval",
    "metric",
    "top1",
    "std",
    "notes",
    "source",
)

# Reported backbone name -> config backbone name (None: no config can run it).
BACKBONES: dict[str, str | None] = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "mlp5": "mlp5",  # i-Mix's mlp_5layer (CovType, HIGGS)
    "alexnet": "alexnet",
    # CMC's 2xResNet-50-half: one half-width ResNet-50 per view (L / ab). The cmc method builds
    # one encoder per view from the backbone config (resnet50_imagenet_half).
    "2xresnet50half": "resnet50_imagenet_half",
    "resnet50x2": None,  # 2x-wide ResNet-50: no backbone config
}
BACKBONE_NOTES = {
    "2xresnet50half": "2xresnet50half -> backbone=resnet50_imagenet_half under method=cmc "
    "(one encoder per view)",
    "resnet50x2": "no 2x-wide ResNet-50 backbone config",
}
# Datasets whose ResNets have the ImageNet stem (7x7 conv + max-pool): a reported ``resnetNN``
# runs as the ``resnetNN_imagenet`` backbone config there.
IMAGENET_STEM_DATASETS = ("imagenet", "imagenet100")
# Reported methods without a method config.
METHODS_WITHOUT_CONFIG = {"pirl": "PIRL has no method config"}
EVALS = {"linear": "linear_top1", "pinv": "linear_top1", "knn": "knn_top1"}

# i-Mix Table 1 prints no epochs; run.sh (kibok90/imix@d40fabe L5-35) gives them per cell:
# (domain, method, mix) -> epochs. MoCo v2 is the paper's "MoCo v2" column (method=mocov2).
IMIX_T1_EPOCHS: dict[tuple[str, str, str], int] = {
    ("cifar10", "npair", "none"): 2000,
    ("cifar10", "npair", "imixup"): 4000,
    ("cifar10", "mocov2", "none"): 1000,
    ("cifar10", "mocov2", "imixup"): 4000,
    ("cifar10", "byol", "none"): 1000,
    ("cifar10", "byol", "imixup"): 2000,
    ("cifar100", "npair", "none"): 4000,
    ("cifar100", "npair", "imixup"): 2000,
    ("cifar100", "mocov2", "none"): 1000,
    ("cifar100", "mocov2", "imixup"): 2000,
    ("cifar100", "byol", "none"): 1000,
    ("cifar100", "byol", "imixup"): 4000,
    **{
        ("speech_commands", m, x): 500
        for m in ("npair", "mocov2", "byol")
        for x in ("none", "imixup")
    },
    **{("covtype", m, x): 500 for m in ("npair", "mocov2", "byol") for x in ("none", "imixup")},
}
IMIX_T1_BACKBONE = {
    "cifar10": "resnet50",
    "cifar100": "resnet50",
    "speech_commands": "resnet50",
    "covtype": "mlp5",
}
IMIX_T1_BATCH = {"cifar10": 256, "cifar100": 256, "speech_commands": 256, "covtype": 512}

# Global pre-training batch size of each table (None: not stated, not matched on).
TABLE_BATCH: dict[tuple[str, str], int | None] = {
    ("unmix", "Table 1"): 256,
    ("unmix", "Fig:SwAV-CIFAR (paper)"): 256,
    ("unmix", "repo:UnMix_SwAV/for_CIFAR"): 128,
    ("unmix", "repo:CIFAR-demo"): 512,
    ("cmc", "repo:README ImageNet"): 128,
    ("cmc", "repo:README ImageNet-100"): 128,
    ("cmc", "paper (table id unknown)"): None,
}

# Defaults of the config tree for qualifiers a run may not record.
QUALIFIER_DEFAULTS: dict[str, Any] = {"symmetric": False}


@dataclass(frozen=True)
class Variant:
    """What separates rows of one (domain, backbone, method, mix, epochs, eval) cell."""

    label: str = ""
    match: tuple[tuple[str, Any], ...] = ()  # results.json key -> required value
    why_not: str | None = None  # set when no config can run this variant


def variant_of(notes: str) -> Variant:
    """The variant a row's ``notes`` describe (loss symmetry, negatives, multi-scale)."""
    n = notes or ""
    if "dagger" in n:
        return Variant("†", (), "multi-scale training (†) is not in the config tree")
    if re.search(r"\basymmetric loss", n):
        return Variant("asym", (("symmetric", False),))
    if re.search(r"\bsymmetric loss", n):
        return Variant("sym", (("symmetric", True),))
    loss = re.search(r"loss=([A-Za-z-]+)", n)
    neg = re.search(r"negatives=(\d+)", n)
    if loss or neg:
        k = int(neg.group(1)) if neg else None
        kind = "nce" if loss and loss.group(1) == "NCE" else "softmax"
        label = ("NCE" if kind == "nce" else "softmax") + (f", K={k}" if k else "")
        # a run's results.json ``loss`` (run.base_results): NCE and softmax-CE rows with the same
        # number of negatives are told apart by it
        match = ((("queue_size", k),) if k else ()) + (("loss", kind),)
        return Variant(label, match)
    return Variant()


@dataclass
class Cell:
    """One table cell: the config values runs must have, and the reported number (if any)."""

    paper: str
    table: str
    domain: str
    backbone: str | None
    method: str
    mix: str
    epochs: int | None
    batch_size: int | None
    eval: str
    variant: Variant = field(default_factory=Variant)
    top1: float | None = None
    std: float | None = None
    top1_text: str = ""  # the numbers exactly as printed in the CSV ("87.0", not 87)
    std_text: str = ""
    notes: str = ""
    source: str = ""
    reported_backbone: str = ""
    why_not: str | None = None  # no runnable config for this cell

    @property
    def runnable(self) -> bool:
        return self.why_not is None

    @property
    def metric(self) -> str:
        return EVALS.get(self.eval, "linear_top1")

    def key(self) -> tuple:
        return (
            self.domain,
            self.reported_backbone or self.backbone,
            self.method,
            self.mix,
            self.epochs,
            self.eval,
            self.variant.label,
        )

    def as_row(self) -> dict[str, Any]:
        return {
            "paper": self.paper,
            "table": self.table,
            "domain": self.domain,
            "backbone": self.backbone,
            "reported_backbone": self.reported_backbone,
            "method": self.method,
            "mix": self.mix,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval": self.eval,
            "variant": self.variant.label,
            "top1": self.top1,
            "std": self.std,
            "reported": self.top1_text + (f" ± {self.std_text}" if self.std_text else ""),
            "runnable": self.runnable,
            "why_not": self.why_not,
        }


def _num(v: str) -> float | None:
    v = (v or "").strip()
    return float(v) if v else None


def load_csv(path: str | os.PathLike = REPORTED_CSV) -> pd.DataFrame:
    """The reported CSV (see ``_load_csv``); parsed once per file version."""
    st = os.stat(path)
    df = _load_csv(os.fspath(path), st.st_mtime_ns, st.st_size)
    out = df.copy()
    out.attrs = {k: list(v) for k, v in df.attrs.items()}
    return out


@functools.lru_cache(maxsize=8)
def _load_csv(path: str, _mtime_ns: int, _size: int) -> pd.DataFrame:
    """The reported CSV as text columns, checked for the expected header.

    A row with more fields than the header has an unquoted comma in its free-text ``notes``
    (the only free-text column before ``source``): the surplus fields are joined back into
    ``notes`` and the row is listed in ``df.attrs["repaired_lines"]``. Any other shape is an
    error naming the line.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = rows[0]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    n = len(header)
    i_notes = header.index("notes")
    fixed: list[list[str]] = []
    repaired: list[int] = []
    for lineno, r in enumerate(rows[1:], start=2):
        if not any(x.strip() for x in r):
            continue
        if len(r) > n and i_notes == n - 2:
            r = [*r[:i_notes], ",".join(r[i_notes:-1]), r[-1]]
            repaired.append(lineno)
        if len(r) != n:
            raise ValueError(
                f"{path}:{lineno}: {len(r)} fields, expected {n} ({', '.join(header)})"
            )
        fixed.append(r)
    df = pd.DataFrame(fixed, columns=header)
    df.attrs["repaired_lines"] = repaired
    return df


def cell_of_row(r: dict[str, str]) -> Cell:
    paper, table, dom = r["paper"], r["table"], r["dataset"]
    method, mix, ev = r["method"], r["mix"], r["eval"]
    why: list[str] = []
    bb = BACKBONES.get(r["backbone"], r["backbone"])
    if dom in IMAGENET_STEM_DATASETS and bb in ("resnet18", "resnet34", "resnet50"):
        bb = f"{bb}_imagenet"
    if bb is None:
        why.append(BACKBONE_NOTES.get(r["backbone"], f"no backbone config for {r['backbone']}"))
    if method in METHODS_WITHOUT_CONFIG:
        why.append(METHODS_WITHOUT_CONFIG[method])
    if ev not in EVALS:
        why.append(f"eval {ev!r} is not an evaluation the runs record")
    epochs = int(float(r["epochs"])) if r["epochs"].strip() else None
    batch = TABLE_BATCH.get((paper, table))
    if paper == "imix" and table == "Table 1":
        epochs = epochs or IMIX_T1_EPOCHS.get((dom, method, mix))
        batch = IMIX_T1_BATCH.get(dom)
    if epochs is None:
        why.append("pre-training epochs not stated by the source")
    v = variant_of(r["notes"])
    if v.why_not:
        why.append(v.why_not)
    return Cell(
        paper=paper,
        table=table,
        domain=dom,
        backbone=bb,
        method=method,
        mix=mix,
        epochs=epochs,
        batch_size=batch,
        eval=ev,
        variant=v,
        top1=_num(r["top1"]),
        std=_num(r["std"]),
        top1_text=r["top1"].strip(),
        std_text=r["std"].strip(),
        notes=r["notes"],
        source=r["source"],
        reported_backbone=r["backbone"] if bb != r["backbone"] else "",
        why_not="; ".join(why) or None,
    )


def load_cells(path: str | os.PathLike = REPORTED_CSV) -> list[Cell]:
    """Every reported row as a ``Cell``."""
    return [cell_of_row(r) for r in load_csv(path).to_dict("records")]


def tables(path: str | os.PathLike = REPORTED_CSV) -> list[tuple[str, str]]:
    """``(paper, table)`` pairs in the reported data, in file order."""
    df = load_csv(path)
    return list(dict.fromkeys(zip(df["paper"], df["table"])))


def match_runs(runs: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """The ``ok`` runs whose config values put them in ``cell``."""
    if runs.empty or not cell.runnable:
        return runs.iloc[0:0]
    m = (
        (runs["status"] == "ok")
        & (runs["domain"] == cell.domain)
        & (runs["backbone"] == cell.backbone)
        & (runs["method"] == cell.method)
        & (runs["mix"] == cell.mix)
    )
    if cell.epochs is not None:
        m &= runs["epochs"] == cell.epochs
    if cell.batch_size is not None:
        m &= runs["batch_size"] == cell.batch_size
    if cell.eval in ("linear", "pinv"):
        m &= runs["eval"] == cell.eval
    for k, want in cell.variant.match:
        col = runs[k] if k in runs else pd.Series([None] * len(runs), index=runs.index)
        if k in QUALIFIER_DEFAULTS:
            col = col.map(lambda v, d=QUALIFIER_DEFAULTS[k]: d if v is None or v != v else v)
        m &= col == want
    out = runs[m]
    return out[out[cell.metric].notna()]
