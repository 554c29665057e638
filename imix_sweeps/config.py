"""Structured configs, compose-time validation, and building objects from ``_target_``.

The YAML tree in ``conf/`` has one group per sweep axis (``method``, ``mix``, ``domain``,
``backbone``) plus ``optim``, ``eval`` and ``train``; the dataclasses below are its schema,
registered in Hydra's ConfigStore as ``base_config``. Every group option carries the metadata
that ``validate`` checks (modalities, mix families), so an invalid combination fails before
anything is built, with a message that names the conflicting choices and what is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from hydra.utils import get_object, instantiate
from omegaconf import II, MISSING, DictConfig, OmegaConf
from torch import nn

from imix_sweeps.contracts import Domain, Method
from imix_sweeps.mix import MixStrategy
from imix_sweeps.train import SCHEDULES  # optim.schedule values (lr_at)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
MODALITIES = ("image", "audio", "tabular")


# ----------------------------------------------------------------------------- schema
@dataclass
class MethodConf:
    name: str = MISSING
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    domains: list[str] | None = None  # domains it can run on (null: any), e.g. colour images only
    model: Any = MISSING  # {_target_: imix_sweeps.methods.<builder>, ...options}


@dataclass
class MixConf:
    name: str = MISSING
    family: str = "none"
    alpha: float | None = None
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    fn: Any = MISSING  # {_target_: imix_sweeps.mix.<fn>, _partial_: true, ...}
    input_fn: Any = None
    backbones: list[str] | None = None  # backbones it can run on (null: any), e.g. manifold mixing


@dataclass
class DomainConf:
    name: str = MISSING
    modality: str = MISSING
    num_classes: int = MISSING
    root: str | None = None  # where the dataset lives (null for embedded data)
    temperature: float = 0.2
    batch_size: int = 256
    epochs: int = 200
    data: Any = MISSING  # {_target_: builder returning a Domain}


@dataclass
class AugmentConf:
    """The pre-training augmentation. ``null`` entries keep the domain's own setting (its crop
    size, crop scale and blur, the MoCo v2 colour ops); image options apply to image domains
    whose builders take ``augment`` (``imix_sweeps.data.images``)."""

    name: str = MISSING
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    enabled: bool = True  # false: no augmentation, the views are the evaluation inputs (--no-aug)
    size: int | None = None  # crop output size
    crop_scale: list[float] | None = None  # RandomResizedCrop scale
    # ColorJitter [brightness, contrast, saturation, hue]; []: none
    jitter: list[float] | None = None
    p_jitter: float | None = None  # probability of the jitter
    p_gray: float | None = None  # RandomGrayscale probability
    gray_first: bool | None = None  # grayscale before the jitter (CMC repository order)
    blur: bool | None = None  # Gaussian blur, sigma 0.1-2, p 0.5


@dataclass
class BackboneConf:
    name: str = MISSING
    modalities: list[str] = field(default_factory=lambda: ["image"])
    net: Any = MISSING  # {_target_: imix_sweeps.backbones.<builder>, ...}; called with in_shape=


@dataclass
class OptimConf:
    name: str = "sgd"
    base_lr: float = 0.125  # lr = base_lr * batch_size / base_batch, unless lr is set
    base_batch: int = 256
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float | None = None  # null: official rule (10 if epochs > 500 else 5)
    schedule: str = "cosine_epoch"  # cosine_epoch | cosine | step (imix_sweeps.train.lr_at)
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    final_lr: float = 0.0  # cosine (per step): the lr it ends at
    hold_epochs: int = 0  # cosine_epoch: epochs at the full lr before the cosine


@dataclass
class EvalConf:
    name: str = "default"
    linear: bool = True
    linear_method: str = "lbfgs"  # lbfgs | sgd | pinv | official_sgd
    linear_epochs: int = 100
    linear_lr: float = 1.0
    linear_weight_decay: float = 0.0
    # official_sgd only (eval=official): the lr grid, its decay, batch and fc init
    linear_lrs: list[float] = field(default_factory=list)
    linear_milestones: list[int] = field(default_factory=list)
    linear_gamma: float | None = None
    linear_batch_size: int | None = None
    linear_lr_batch: int | None = None  # the batch the lrs are scaled by (null: linear_batch_size)
    linear_init_std: float | None = None
    linear_crop: str | None = None  # padded | resized: replaces the domain's (null: the domain's)
    linear_report: str = "last"  # last | best_epoch (top-1 of each lr's run)
    knn: bool = True
    knn_k: int = 200
    knn_temperature: float = 0.1
    knn_every: int = 0  # monitor every N epochs during pre-training (0: off)
    fewshot_per_class: int = 0  # >0: also a probe with this many labels per class
    fewshot_draws: int = 5
    batch_size: int = 512


@dataclass
class TrainConf:
    epochs: int = II("domain.epochs")
    batch_size: int = II("domain.batch_size")
    amp: bool = True
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 1
    check_finite_every: int = 10
    resume: bool = True
    log_every: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch intra-op threads on CPU (0: leave as is)
    augment_threads: int = 0  # in-memory domains: threads augmenting the coming steps (CPU runs)
    sync_bn: bool = False  # BatchNorm -> SyncBatchNorm under DDP (CUDA only)
    heartbeat_interval_s: float = (
        60.0  # results.json "heartbeat" refreshed this often while running
    )


@dataclass
class LoggerConf:
    name: str = "none"  # none | tensorboard | csv | mlflow | wandb (conf/logger/)
    sink: Any = None  # {_target_: imix_sweeps.loggers.<Logger>, ...}; called with run_dir=


@dataclass
class Config:
    method: MethodConf = MISSING
    mix: MixConf = MISSING
    domain: DomainConf = MISSING
    backbone: BackboneConf = MISSING
    augment: AugmentConf = MISSING
    optim: OptimConf = MISSING
    eval: EvalConf = MISSING
    train: TrainConf = field(default_factory=TrainConf)
    logger: LoggerConf = field(default_factory=LoggerConf)
    seed: int = 0
    experiment: str | None = None
    skip_done: bool = True  # a run dir whose results.json says ok for this config is not re-run


def register() -> None:
    """The schema as ``base_config``, and the ``imix.or`` resolver: ``${imix.or:${x},d}`` is
    ``x``, or ``d`` where ``x`` is null (a sweep without an ``experiment`` name goes to
    ``multirun/sweep/``)."""
    ConfigStore.instance().store(name="base_config", node=Config)
    OmegaConf.register_new_resolver("imix.or", lambda v, d: d if v is None else v, replace=True)


register()


# ----------------------------------------------------------------------------- validation
class ConfigError(ValueError):
    """An invalid combination of config choices."""


@functools.cache
def group_options(group: str) -> dict[str, dict]:
    """``{option name: its YAML as a dict}`` for a group of the committed tree."""
    out = {}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        node.pop("defaults", None)
        out[path.stem] = OmegaConf.to_container(node, resolve=False)
    return out


def _allowed(group: str, pred) -> str:
    names = [n for n, o in group_options(group).items() if pred(o)]
    return ", ".join(names) if names else "(none)"


def method_class(target: str) -> type:
    """The class that a method's ``model._target_`` builds: the target itself when it is a
    class, else the class its builder function names as its return annotation."""
    obj = get_object(target)
    if isinstance(obj, type):
        return obj
    cls = typing.get_type_hints(obj).get("return")
    if not isinstance(cls, type):
        raise ConfigError(
            f"method builder {target} must annotate its return type with the method class "
            "(the class declares the mix families it implements, see imix_sweeps.contracts.Method)"
        )
    return cls


def method_families(model: Mapping[str, Any]) -> tuple[str, ...]:
    """The mix families the method built by ``model`` (``{_target_: ...}``) implements: its
    class's ``families``, the one place they are declared."""
    return tuple(method_class(str(model["_target_"])).families)


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for a combination that cannot train, naming the conflict."""
    dom, bb, mix, meth = cfg.domain, cfg.backbone, cfg.mix, cfg.method
    modality = dom.modality
    errors = []
    if modality not in bb.modalities:
        errors.append(
            f"backbone={bb.name} takes {'/'.join(bb.modalities)} inputs, but domain={dom.name} is {modality}; "
            f"backbones for {modality}: {_allowed('backbone', lambda o: modality in o.get('modalities', []))}"
        )
    if modality not in mix.modalities:
        errors.append(
            f"mix={mix.name} does not apply to {modality} data (domain={dom.name}); "
            f"mixes for {modality}: {_allowed('mix', lambda o: modality in o.get('modalities', list(MODALITIES)))}"
        )
    families = method_families(meth.model)
    if mix.family not in families:
        errors.append(
            f"method={meth.name} does not support mix={mix.name} (family {mix.family}); "
            f"mixes for {meth.name}: {_allowed('mix', lambda o: o.get('family', 'none') in families)}; "
            f"methods that take mix={mix.name}: {_allowed('method', lambda o: mix.family in method_families(o['model']))}"
        )
    if mix.get("backbones") is not None and bb.name not in mix.backbones:
        errors.append(
            f"mix={mix.name} cannot run on backbone={bb.name}; backbones for mix={mix.name}: "
            f"{', '.join(mix.backbones)}"
        )
    if meth.get("domains") is not None and dom.name not in meth.domains:
        errors.append(
            f"method={meth.name} cannot run on domain={dom.name}; domains for method={meth.name}: "
            f"{', '.join(meth.domains)}"
        )
    if modality not in meth.modalities:
        errors.append(
            f"method={meth.name} needs {'/'.join(meth.modalities)} data, but domain={dom.name} is {modality}; "
            f"methods for {modality}: {_allowed('method', lambda o: modality in o.get('modalities', list(MODALITIES)))}"
        )
    aug = cfg.get("augment")
    if aug is not None and modality not in aug.modalities:
        errors.append(
            f"augment={aug.name} applies to {'/'.join(aug.modalities)} data, but domain={dom.name} is "
            f"{modality}; augment options for {modality}: "
            f"{_allowed('augment', lambda o: modality in o.get('modalities', list(MODALITIES)))}"
        )
    if cfg.train.batch_size < 2:
        errors.append(
            f"train.batch_size={cfg.train.batch_size}: contrastive learning needs at least 2 samples"
        )
    errors += value_errors(cfg)
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))


LINEAR_METHODS = (
    "lbfgs",
    "sgd",
    "pinv",
    "official_sgd",
)  # eval.linear_method (imix_sweeps.evaluate)
DEVICES = ("auto", "cpu", "cuda")  # train.device


def _num(v: Any) -> float | None:
    """``v`` as a float, or None when it is not a number (bools are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def value_errors(cfg: DictConfig) -> list[str]:
    """Messages for values that cannot train (each names the key and what is allowed).

    Checked before a run directory exists, so a typo never costs a pre-training."""
    errors: list[str] = []

    def need(key: str, ok: Any, allowed: str) -> None:
        v = OmegaConf.select(cfg, key, default=None)
        if not ok(v):
            errors.append(f"{key}={v!r}: allowed {allowed}")

    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    def nonneg_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def positive(v: Any) -> bool:
        x = _num(v)
        return x is not None and math.isfinite(x) and x > 0

    def nonneg(v: Any) -> bool:
        x = _num(v)
        return x is not None and math.isfinite(x) and x >= 0

    need("train.epochs", positive_int, "an integer >= 1")
    need("train.batch_size", positive_int, "an integer >= 1")
    need("train.checkpoint_every", nonneg_int, "an integer >= 0 (0: only at the end)")
    need("train.check_finite_every", nonneg_int, "an integer >= 0 (0: only at epoch ends)")
    need("train.log_every", nonneg_int, "an integer >= 0")
    need("train.threads", nonneg_int, "an integer >= 0")
    need("train.augment_threads", nonneg_int, "an integer >= 0")
    need("train.device", lambda v: v in DEVICES, ", ".join(DEVICES))
    need("train.heartbeat_interval_s", positive, "a number of seconds > 0")
    need("optim.schedule", lambda v: v in SCHEDULES, ", ".join(SCHEDULES))
    if cfg.optim.lr is not None:
        need("optim.lr", positive, "null (scaled from optim.base_lr) or a finite number > 0")
    else:
        need("optim.base_lr", positive, "a finite number > 0")
        need("optim.base_batch", positive_int, "an integer >= 1")
    need("optim.momentum", lambda v: nonneg(v) and float(v) < 1, "a number in [0, 1)")
    need("optim.weight_decay", nonneg, "a finite number >= 0")
    need("optim.gamma", positive, "a finite number > 0")
    if cfg.optim.warmup_epochs is not None:
        need("optim.warmup_epochs", nonneg, "null (the official rule) or a number >= 0")
    need(
        "optim.milestones",
        lambda v: v is not None and all(positive_int(m) for m in v),
        "a list of epochs >= 1",
    )
    mix_fns = [f for f in (cfg.mix.get("fn"), cfg.mix.get("input_fn")) if isinstance(f, DictConfig)]
    if cfg.mix.alpha is not None or any("alpha" in f for f in mix_fns):
        need("mix.alpha", positive, "a finite number > 0 (the Beta(alpha, alpha) parameter)")
    t = OmegaConf.select(cfg, "method.model.temperature", default=None)
    if t is not None:
        need("method.model.temperature", positive, "a finite number > 0")
    need("eval.linear_method", lambda v: v in LINEAR_METHODS, ", ".join(LINEAR_METHODS))
    need("eval.linear_epochs", positive_int, "an integer >= 1")
    need("eval.linear_lr", positive, "a finite number > 0")
    need("eval.linear_weight_decay", nonneg, "a finite number >= 0")
    need("eval.knn_k", positive_int, "an integer >= 1")
    need("eval.knn_temperature", positive, "a finite number > 0")
    need("eval.knn_every", nonneg_int, "an integer >= 0 (0: off)")
    need("eval.fewshot_per_class", nonneg_int, "an integer >= 0 (0: off)")
    need("eval.fewshot_draws", positive_int, "an integer >= 1")
    need("eval.batch_size", positive_int, "an integer >= 1")
    return errors


class ValidateBeforeRun(Callback):
    """Hydra callback (wired in ``conf/config.yaml``): a single run's config is validated before
    Hydra creates its output dir, so an invalid one leaves nothing behind. (Multirun jobs are
    validated by ``imix_sweeps.run.app``, which removes the dir Hydra made for an invalid job.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except ConfigError as e:
            # SystemExit, not an Exception: Hydra turns a callback's Exception into a warning.
            raise SystemExit(f"error: {e}") from None


# ----------------------------------------------------------------------------- derived values
def lr_of(cfg: DictConfig) -> float:
    o = cfg.optim
    return (
        float(o.lr) if o.lr is not None else float(o.base_lr) * cfg.train.batch_size / o.base_batch
    )


def warmup_of(cfg: DictConfig) -> float:
    if cfg.optim.warmup_epochs is not None:
        return float(cfg.optim.warmup_epochs)
    return 10.0 if cfg.train.epochs > 500 else 5.0


def temperature_of(cfg: DictConfig) -> float | None:
    t = OmegaConf.select(cfg, "method.model.temperature")
    return float(t) if t is not None else None


def loss_of(cfg: DictConfig) -> str | None:
    """The contrastive loss over [positive, negatives] of a queue or memory-bank method:
    ``nce`` (InsDis / CMC NCE) or ``softmax`` (softmax-CE; MoCo's always); None for the others."""
    loss = OmegaConf.select(cfg, "method.model.loss")
    if loss is None and str(cfg.method.model._target_).endswith(".moco"):
        return "softmax"
    return None if loss is None else str(loss)


RUN_ONLY_KEYS = (
    "train.resume",
    "train.log_every",
    "train.device",
    "train.threads",
    "train.augment_threads",
    "skip_done",
    "train.checkpoint_every",
    "experiment",
    "logger",
    "train.heartbeat_interval_s",
)
# What evaluation reads, not what pre-training computes: left out of the checkpoint's identity,
# so changed evaluation options re-evaluate a finished checkpoint instead of re-training it.
EVAL_KEYS = ("eval",)


def config_hash(cfg: DictConfig, *, include_seed: bool = True, include_eval: bool = True) -> str:
    """sha1 of the resolved config without keys that do not change what is computed.

    ``include_eval=False`` gives the pre-training identity (``pretrain_hash``): the hash a
    checkpoint carries, the same for any evaluation options."""
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    c.pop("hydra", None)
    _hash_method_families(c)
    drop = RUN_ONLY_KEYS + (() if include_seed else ("seed",)) + (() if include_eval else EVAL_KEYS)
    for key in drop:
        head, _, tail = key.rpartition(".")
        node = c.get(head) if head else c
        if isinstance(node, dict):
            node.pop(tail, None)
    return hashlib.sha1(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _hash_method_families(c: dict) -> None:
    """The method's families (declared by its class) hashed under ``method.families``, where the
    method YAMLs used to list them: the hashes of existing runs stay what they were."""
    method = c.get("method")
    if isinstance(method, dict) and isinstance(method.get("model"), dict):
        if "_target_" in method["model"] and "families" not in method:
            method["families"] = list(method_families(method["model"]))


def pretrain_hash(cfg: DictConfig) -> str:
    """The identity of a run's pre-training: ``config_hash`` without the ``eval`` options."""
    return config_hash(cfg, include_eval=False)


# ----------------------------------------------------------------------------- building
AUGMENT_OPTIONS = ("size", "crop_scale", "jitter", "p_jitter", "p_gray", "gray_first", "blur")


def build_domain(cfg: DictConfig):
    """The domain of ``cfg.domain.data``; the non-null options of ``cfg.augment`` are passed to
    its builder as ``augment=``, and ``augment.enabled: false`` turns augmentation off."""
    aug = cfg.get("augment")
    opts = {} if aug is None else {k: aug[k] for k in AUGMENT_OPTIONS if aug.get(k) is not None}
    extra = {"augment": OmegaConf.to_container(OmegaConf.create(opts))} if opts else {}
    try:
        domain = instantiate(cfg.domain.data, _convert_="all", **extra)
    except Exception as e:
        if extra and "augment" in str(e):
            raise ConfigError(
                f"domain={cfg.domain.name} does not take augment={aug.name}'s options "
                f"({', '.join(opts)}); its builder has its own augmentation ({e})"
            ) from e
        raise
    if aug is not None and not aug.enabled:
        domain = domain.without_augmentation()
    return domain


def build_mix(cfg: DictConfig) -> MixStrategy:
    m = cfg.mix
    return MixStrategy(
        name=m.name,
        family=m.family,
        fn=instantiate(m.fn),
        input_fn=instantiate(m.input_fn) if m.input_fn is not None else None,
    )


def build_backbone(cfg: DictConfig, in_shape: list[int]):
    return instantiate(cfg.backbone.net, in_shape=list(in_shape), _convert_="all")


def build_method(
    cfg: DictConfig, backbone: nn.Module, mix: MixStrategy, domain: Domain | None = None
) -> Method:
    """The method of ``cfg.method.model``. Options a method declares as ``input_mean`` /
    ``input_std`` (null) are taken from the built domain's normalisation (``input_stats``)."""
    # Built as a partial, then called: objects passed to instantiate() would be turned into configs.
    builder = instantiate(cfg.method.model, _partial_=True, _convert_="all")
    model_cfg = cfg.method.model
    stats = None if domain is None else domain.input_stats
    extra = {}
    if (
        stats is not None
        and "input_mean" in model_cfg
        and model_cfg.input_mean is None
        and model_cfg.input_std is None
    ):
        extra = {"input_mean": list(stats[0]), "input_std": list(stats[1])}
    return builder(backbone=backbone, mix=mix, **extra)
