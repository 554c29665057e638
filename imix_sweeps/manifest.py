"""Cell manifests: the official effective settings of every paper cell, with their sources.

``conf/manifest/<table>.yaml`` holds, per cell of ``conf/cell/``, the settings the official code
runs (``value``), where each comes from (``source``: repository file and line, or README row)
and, where this project knowingly differs, ``differs: <reason>``. ``network`` entries give the
trainable parameters per module (count, tensors, sha1 of the sorted shapes) re-derived from the
official model code by ``imix_sweeps.official_nets``.

``compare`` lines a composed config (and its built model) up against a cell's entry;
``explain`` renders that for ``imix-sweeps --explain +cell=<name>`` (``run.explain_main``).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from torch import nn

from imix_sweeps.config import (
    AUGMENT_OPTIONS,
    CONF_DIR,
    build_backbone,
    build_method,
    build_mix,
    loss_of,
    lr_of,
    temperature_of,
    warmup_of,
)
from imix_sweeps.data.images import ImageAugment, resolve_augment
from imix_sweeps.official_nets import module_summary

MANIFEST_DIR = CONF_DIR / "manifest"
NETWORK = ("backbone", "head", "predictor")


def _select(key: str) -> Callable[[DictConfig], Any]:
    return lambda cfg: OmegaConf.select(cfg, key)


def _negatives(cfg: DictConfig) -> int | None:
    for key in ("method.model.queue_size", "method.model.num_negatives"):
        value = OmegaConf.select(cfg, key)
        if value is not None:
            return int(value)
    return None


def _milestones(cfg: DictConfig) -> list[int] | None:
    return [int(m) for m in cfg.optim.milestones] if cfg.optim.schedule == "step" else None


def _builder_default(data: DictConfig, *names: str) -> Any:
    """The first of ``names`` the domain config sets, else its builder's default for it."""
    for name in names:
        value = OmegaConf.select(data, name)
        if value is not None:
            return value
    params = inspect.signature(get_method(data._target_)).parameters
    for name in names:
        if name in params and params[name].default is not inspect.Parameter.empty:
            return params[name].default
    return None


def _image_augmentation(cfg: DictConfig) -> dict[str, Any] | None:
    """The effective image augmentation as ``resolve_augment`` builds it: the domain builder's
    own size, crop scale and blur with the ``augment`` group's non-null options on top."""
    data = cfg.domain.data
    if "augment" not in inspect.signature(get_method(data._target_)).parameters:
        return None  # a domain with its own fixed augmentation (digits): not an option here
    aug = cfg.get("augment")
    opts = {} if aug is None else {k: aug[k] for k in AUGMENT_OPTIONS if aug.get(k) is not None}
    scale = _builder_default(data, "crop_scale", "scale") or ImageAugment.scale
    size, a = resolve_augment(
        int(_builder_default(data, "size") or 0),
        list(scale),
        bool(_builder_default(data, "blur")),
        OmegaConf.to_container(OmegaConf.create(opts)),
    )
    return {
        "enabled": True,
        "size": size or None,  # None: a builder without a size option (its native size)
        "crop_scale": list(a.scale),
        "jitter": list(a.jitter) if a.jitter is not None else [],
        "p_jitter": a.p_jitter if a.jitter is not None else 0.0,
        "p_gray": a.p_gray,
        "gray_first": a.gray_first,
        "blur": a.blur,
    }


def _augmentation(cfg: DictConfig) -> dict[str, Any] | None:
    """The pre-training augmentation a run applies: ``{enabled: false}`` without one
    (``augment=none``); images: the resolved crop / colour / blur parameters; speech: the
    background-noise and silence parameters of the official chain; tabular: the input-drop."""
    aug = cfg.get("augment")
    if aug is not None and not aug.enabled:
        return {"enabled": False}
    data = cfg.domain.data
    modality = cfg.domain.modality
    if modality == "image":
        return _image_augmentation(cfg)
    if modality == "audio":
        return {
            "enabled": True,
            "noise_p": float(_builder_default(data, "noise_p")),
            "noise_max": float(_builder_default(data, "noise_max")),
            "silence_fraction": float(_builder_default(data, "silence_fraction")),
        }
    if modality == "tabular":
        drop = OmegaConf.select(data, "drop")
        return {"enabled": True, "input_drop": None if drop is None else float(drop)}
    return None


def _linear_crop(cfg: DictConfig) -> str | None:
    """The official linear evaluation's training crop: ``eval.linear_crop``, else the domain's
    (ImageNet folders: resized; other image domains: padded; speech and tabular: none)."""
    crop = OmegaConf.select(cfg, "eval.linear_crop")
    if crop is not None:
        return str(crop)
    if cfg.domain.modality != "image":
        return None
    target = str(cfg.domain.data._target_)
    return "resized" if target.endswith((".imagenet", ".imagenet100")) else "padded"


def _eval(cfg: DictConfig) -> dict[str, Any]:
    """The linear evaluation protocol. ``official_sgd``: the lrs as applied (the grid scaled by
    ``(linear_lr_batch or linear_batch_size) / 256``, sorted), schedule, batch, init, training
    crop and which epoch's top-1 is reported; other probes: their method, epochs and lr."""
    e = cfg.eval
    if e.linear_method != "official_sgd":
        return {
            "method": str(e.linear_method),
            "epochs": int(e.linear_epochs),
            "lr": float(e.linear_lr),
        }
    scale = (e.linear_lr_batch or e.linear_batch_size) / 256
    return {
        "method": "official_sgd",
        "lrs": sorted(float(lr) * scale for lr in e.linear_lrs),
        "epochs": int(e.linear_epochs),
        "milestones": [int(m) for m in e.linear_milestones],
        "gamma": float(e.linear_gamma),
        "batch": int(e.linear_batch_size),
        "weight_decay": float(e.linear_weight_decay),
        "init_std": float(e.linear_init_std),
        "crop": _linear_crop(cfg),
        "report": str(e.linear_report),
    }


def _eta_min(cfg: DictConfig) -> float | None:
    """The lr the cosine ends at: ``cosine_epoch`` has no floor (0), ``cosine`` ends at
    ``optim.final_lr``; step decay has none."""
    return {"cosine_epoch": 0.0, "cosine": float(cfg.optim.final_lr)}.get(cfg.optim.schedule)


def _warmup_to(cfg: DictConfig) -> str | None:
    """The lr the warm-up ramps to (``train.warmup_target``): with ``cosine_epoch`` the cosine's
    value at the warm-up's end with eta_min 0.001 lr (i-Mix main_pretext.py L221-224), else lr."""
    if warmup_of(cfg) <= 0:
        return None
    return "cosine_at_warmup_end" if cfg.optim.schedule == "cosine_epoch" else "lr"


# setting name -> its value in a composed config (the settings this project controls)
EXTRACT: dict[str, Callable[[DictConfig], Any]] = {
    "batch_size": _select("train.batch_size"),
    "epochs": _select("train.epochs"),
    "lr": lr_of,
    "warmup_epochs": warmup_of,
    "warmup_to": _warmup_to,
    "schedule": _select("optim.schedule"),
    "milestones": _milestones,
    "eta_min": _eta_min,
    "lr_hold_epochs": _select("optim.hold_epochs"),
    "momentum_sgd": _select("optim.momentum"),
    "weight_decay": _select("optim.weight_decay"),
    "temperature": temperature_of,
    "head": _select("method.model.head"),
    "predictor": _select("method.model.predictor"),
    "ema": _select("method.model.momentum"),
    "queue": _negatives,
    "loss": loss_of,
    "bank_momentum": _select("method.model.bank_momentum"),
    "shuffle_bn": _select("method.model.shuffle_bn"),
    "symmetric": _select("method.model.symmetric"),
    "gather": _select("method.model.gather"),
    "color": _select("method.model.color"),
    "mix_temperature": _select("method.model.mix_temperature"),
    "mix_weight": _select("method.model.mix_weight"),
    "mix": _select("mix.name"),
    "alpha": _select("mix.alpha"),
    "mix_prob": _select("mix.fn.prob"),
    "input_drop": _select("domain.data.drop"),
    "augmentation": _augmentation,
    "eval": _eval,
}


@functools.cache
def manifests() -> dict[str, dict[str, Any]]:
    """``{name: entry}`` over every manifest file: the paper cells (``cells``, composed with
    ``+cell=<name>``) and the experiment presets (``presets``, composed with
    ``+experiment=<name>`` plus the entry's ``overrides``). Each entry names its table."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFEST_DIR.glob("*.yaml")):
        doc = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        assert isinstance(doc, dict)
        for kind, group in (("cell", "cells"), ("experiment", "presets")):
            for name, entry in (doc.get(group) or {}).items():
                if name in out:
                    raise ValueError(f"{name} is in two manifests")
                out[name] = {
                    **entry,
                    "kind": kind,
                    "overrides": [f"+{kind}={name}", *entry.get("overrides", [])],
                    "table": doc["table"],
                    "repository": doc["repository"],
                    "file": path.name,
                }
    return out


def entry_for(cell: str) -> dict[str, Any] | None:
    return manifests().get(cell)


@dataclass(frozen=True)
class Row:
    name: str
    project: Any  # this config's value (None where it does not express the setting)
    official: Any
    source: str
    expressed: bool  # the config controls this setting, so it is compared
    differs: str | None = None

    @property
    def equal(self) -> bool:
        return same(self.project, self.official)

    @property
    def status(self) -> str:
        """``match`` | ``differs`` (known, with a reason) | ``stale`` (marked as differing but
        equal) | ``MISMATCH`` (differs without a reason) | ``documented`` (not in the config)."""
        if not self.expressed:
            return "differs" if self.differs else "documented"
        if self.differs:
            return "stale" if self.equal else "differs"
        return "match" if self.equal else "MISMATCH"


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def network_modules(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The trainable parts of a built method, by the manifest's module names."""
    if hasattr(model, "net_1"):  # CMC: one encoder and one head per view
        return {"backbone": [model.net_1, model.net_2], "head": [model.head_1, model.head_2]}
    out: dict[str, list[nn.Module]] = {
        "backbone": [model.encoder.backbone],
        "head": [model.encoder.head],
    }
    predictor = getattr(model, "predictor", None)
    if predictor is not None:
        out["predictor"] = [predictor]
    return out


def build_model(cfg: DictConfig, in_shape: list[int]) -> nn.Module:
    """The method as a run builds it (without data: the input shape is given), on the meta
    device, so shapes are real and nothing is allocated."""
    with torch.device("meta"):
        backbone = build_backbone(cfg, in_shape)
        return build_method(cfg, backbone, build_mix(cfg))


def network_summary(model: nn.Module) -> dict[str, dict[str, int | str]]:
    return {name: module_summary(mods) for name, mods in network_modules(model).items()}


def _summary_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("params", "tensors", "shapes_sha1")}


def compare(cfg: DictConfig, entry: dict[str, Any], model: nn.Module | None = None) -> list[Row]:
    """One row per setting of the cell's manifest entry (network first, when ``model``)."""
    rows: list[Row] = []
    if model is not None:
        built = network_summary(model)
        for name, official in (entry.get("network") or {}).items():
            rows.append(
                Row(
                    f"network.{name}",
                    built.get(name),
                    _summary_of(official),
                    official["source"],
                    True,
                    official.get("differs"),
                )
            )
    for name, s in (entry.get("settings") or {}).items():
        extract = EXTRACT.get(name)
        rows.append(
            Row(
                name,
                extract(cfg) if extract else None,
                s["value"],
                s["source"],
                extract is not None,
                s.get("differs"),
            )
        )
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, dict) and "params" in v:
        return f"{v['params']:,} params / {v['tensors']} tensors / {v['shapes_sha1']}"
    if isinstance(v, dict):  # augmentation, eval: one "key value" per entry
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return "-" if v is None else str(v)


def cell_of(overrides: list[str]) -> str | None:
    """The manifest entry an override list selects: ``+cell=<name>``, else a preset's
    ``+experiment=<name>``."""
    found: dict[str, str] = {}
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key in ("cell", "experiment"):
            found[key] = value
    if "cell" in found:
        return found["cell"]
    name = found.get("experiment")
    return name if name is not None and name in manifests() else None


def explain(cfg: DictConfig, cell: str | None) -> tuple[str, int]:
    """The text ``--explain`` prints and the number of unexplained differences in it."""
    entry = entry_for(cell) if cell else None
    lines = [
        f"method={cfg.method.name} mix={cfg.mix.name} domain={cfg.domain.name} "
        f"backbone={cfg.backbone.name}" + (f" cell={cell}" if cell else "")
    ]
    if entry is None:
        lines.append(
            "no official manifest for this config (paper cells, +cell=<name>, and the presets "
            "listed in conf/manifest have one); "
            "its effective settings:"
        )
        for name, extract in EXTRACT.items():
            value = extract(cfg)
            if value is not None:
                lines.append(f"  {name:<16} {_fmt(value)}")
        return "\n".join(lines) + "\n", 0
    lines.append(f"official: {entry['table']}, {entry['repository']} ({entry.get('command')})")
    if entry.get("why"):
        lines.append(f"not comparable as a whole: {entry['why']}")
    model = build_model(cfg, list(entry["input_shape"])) if entry.get("network") else None
    rows = compare(cfg, entry, model)
    width = max([len(r.name) for r in rows] + [8])
    bad = 0
    for r in rows:
        mark = {"match": "ok", "documented": "doc"}.get(r.status, r.status)
        bad += r.status in ("MISMATCH", "stale")
        this = _fmt(r.project) if r.expressed else "(not a config setting)"
        lines.append(f"  {r.name:<{width}}  {mark:<8} this run: {this}")
        if r.status != "match":
            lines.append(f"  {'':<{width}}  {'':<8} official: {_fmt(r.official)}")
        lines.append(f"  {'':<{width}}  {'':<8} source: {r.source}")
        if r.differs:
            lines.append(f"  {'':<{width}}  {'':<8} differs: {r.differs}")
    lines.append(
        f"{sum(r.status == 'match' for r in rows)} match, "
        f"{sum(r.status == 'differs' for r in rows)} differ for a stated reason, "
        f"{sum(r.status == 'documented' for r in rows)} documented only, {bad} unexplained"
    )
    return "\n".join(lines) + "\n", bad
