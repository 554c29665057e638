"""The committed sweeps (``conf/sweep/*.yaml``) as job lists, expanded the way Hydra does.

``jobs("imix_table1")`` reads ``hydra.sweeper.params`` of the sweep file, appends any extra
command-line overrides, and expands them with Hydra's own override parser and
``BasicSweeper.split_arguments`` (command-line keys replace the file's), so the list is exactly
what ``imix-sweeps --multirun +sweep=NAME ...`` would launch. Each job is the list of overrides
it runs with, ``+sweep=NAME`` first.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import OmegaConf

from analysis import CONF_DIR


def sweep_names(conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / "sweep").glob("*.yaml"))


def sweep_params(name: str, conf_dir: Path = CONF_DIR) -> dict[str, str]:
    path = conf_dir / "sweep" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no sweep {name!r}: {path} (known: {', '.join(sweep_names(conf_dir))})"
        )
    cfg = OmegaConf.load(path)
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if params is None:
        raise ValueError(f"{path}: no hydra.sweeper.params")
    return {str(k): str(v) for k, v in OmegaConf.to_container(params).items()}  # type: ignore[union-attr]


def jobs(name: str, extra: list[str] | None = None, conf_dir: Path = CONF_DIR) -> list[list[str]]:
    """Every job of ``imix-sweeps --multirun +sweep=NAME EXTRA...`` as its override list."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from launchers._private import expand_sweep

    lines = [f"{k}={v}" for k, v in sweep_params(name, conf_dir).items()] + list(extra or [])
    parsed = OverridesParser.create().parse_overrides(lines)
    return [[f"+sweep={name}", *job] for job in expand_sweep(parsed)]


def option_exists(group: str, option: str, conf_dir: Path = CONF_DIR) -> bool:
    return (conf_dir / group / f"{option}.yaml").is_file()


def missing_options(job: list[str], conf_dir: Path = CONF_DIR) -> list[str]:
    """``group=option`` choices of a job (and of the cell it adds) with no config file yet."""
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir()}
    missing = []
    choices: dict[str, str] = {}
    for ov in job:
        key, _, val = ov.partition("=")
        key = key.lstrip("+~")
        if key in groups:
            choices[key] = val
    if "cell" in choices and option_exists("cell", choices["cell"], conf_dir):
        cell = OmegaConf.load(conf_dir / "cell" / f"{choices['cell']}.yaml")
        for d in cell.get("defaults", []):
            for k, v in dict(d).items():
                g = str(k).removeprefix("override ").strip("/ ")
                choices.setdefault(g, str(v))  # a command-line choice beats the cell's
    for g, v in choices.items():
        if not option_exists(g, v, conf_dir):
            missing.append(f"{g}={v}")
    return missing


SETTINGS = (
    "domain",
    "backbone",
    "method",
    "mix",
    "train.epochs",
    "train.batch_size",
    "method.model.symmetric",
    "method.model.queue_size",
    "method.model.loss",
    "seed",
)


def job_settings(job: list[str], conf_dir: Path = CONF_DIR) -> dict[str, object]:
    """The values of ``SETTINGS`` a job runs with, from its overrides, its cell and its sweep.

    Resolved without composing (so it works before every domain / method exists): precedence
    is command line / sweep params > the cell file > the sweep file's body. Values nobody sets
    (left to the domain's defaults) are ``None``.
    """
    out: dict[str, object] = dict.fromkeys(SETTINGS)

    def take(node: object, prefix: str = "") -> dict[str, object]:
        flat: dict[str, object] = {}
        if not isinstance(node, dict):
            return flat
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                flat.update(take(v, key + "."))
            else:
                flat[key] = v
        return flat

    layers: list[dict[str, object]] = []
    sweep = next((o.split("=", 1)[1] for o in job if o.startswith("+sweep=")), None)
    if sweep:
        body = OmegaConf.to_container(OmegaConf.load(conf_dir / "sweep" / f"{sweep}.yaml"))
        assert isinstance(body, dict)
        body.pop("hydra", None)
        layers.append(take(body))
    cell = next((o.split("=", 1)[1] for o in job if o.lstrip("+").startswith("cell=")), None)
    if cell:
        c = OmegaConf.to_container(OmegaConf.load(conf_dir / "cell" / f"{cell}.yaml"))
        assert isinstance(c, dict)
        flat = take({k: v for k, v in c.items() if k != "defaults"})
        for d in c.get("defaults", []):
            for k, v in dict(d).items():
                flat[str(k).removeprefix("override ").strip("/ ")] = v
        layers.append(flat)
    cli: dict[str, object] = {}
    for o in job:
        k, _, v = o.partition("=")
        try:
            cli[k.lstrip("+~")] = yaml.safe_load(v) if v else None  # typed as Hydra would
        except yaml.YAMLError:
            cli[k.lstrip("+~")] = v
    layers.append(cli)
    for layer in layers:
        for k in SETTINGS:
            if k in layer:
                out[k] = layer[k]
            elif k == "method.model.queue_size" and "method.model.num_negatives" in layer:
                out[k] = layer["method.model.num_negatives"]  # a memory bank's negatives
    if out["method.model.loss"] is None and out["method"] is not None:
        out["method.model.loss"] = method_loss(str(out["method"]), conf_dir)
    return out


def method_loss(method: str, conf_dir: Path = CONF_DIR) -> str | None:
    """A method's default loss over its negatives, as ``imix_sweeps.config.loss_of`` reads it
    from a composed config: ``model.loss``, else softmax-CE for MoCo, else None."""
    path = conf_dir / "method" / f"{method}.yaml"
    if not path.exists():
        return None
    model = OmegaConf.load(path).get("model") or {}
    if model.get("loss") is not None:
        return str(model["loss"])
    return "softmax" if str(model.get("_target_", "")).endswith(".moco") else None
