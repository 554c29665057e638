"""The plug-in path of docs/EXTENDING.md: a method, a mix and a domain are each one new module
plus one YAML, found through ``_target_`` and a Hydra search path, with no edit to the package.

The document's worked examples are written to a temporary directory that is put on
``sys.path`` and on Hydra's search path (``hydra.searchpath=[file://...]``), as the document
says to do, then validated, built and trained."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from imix_sweeps.config import (
    CONF_DIR,
    ConfigError,
    build_backbone,
    build_domain,
    build_method,
    build_mix,
    method_families,
    validate,
)
from imix_sweeps.data.base import step_generator
from imix_sweeps.train import TrainSpec, build_optimizer, train, train_step

EXTENDING = CONF_DIR.parent / "docs" / "EXTENDING.md"
BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.S)


def doc_files() -> dict[str, str]:
    """``{relative path: text}`` of the worked examples in docs/EXTENDING.md."""
    return {path: text for path, text in BLOCK.findall(EXTENDING.read_text())}


def test_the_document_has_every_worked_example():
    assert set(doc_files()) == {
        "toy_plugins/toy_method.py", "conf/method/toy.yaml",
        "toy_plugins/toy_mix.py", "conf/mix/roll.yaml",
        "toy_plugins/toy_domain.py", "conf/domain/blobs.yaml",
    }  # fmt: skip


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("plugins")
    for path, text in doc_files().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "toy_plugins" / "__init__.py").write_text("")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for mod in [m for m in sys.modules if m.split(".")[0] == "toy_plugins"]:
        del sys.modules[mod]


def compose_with(plugin_dir: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            "config", overrides=[f"hydra.searchpath=[file://{plugin_dir / 'conf'}]", *overrides]
        )


def one_step(cfg) -> torch.Tensor:
    domain = build_domain(cfg)
    model = build_method(cfg, build_backbone(cfg, domain.in_shape), build_mix(cfg), domain)
    spec = TrainSpec(batch_size=16, lr=0.05, fused_optimizer=False)
    opt = build_optimizer(model, spec, torch.device("cpu"))
    before = [p.detach().clone() for p in model.parameters()]
    x1, x2 = next(domain.pretrain_batches(0, 16, seed=0, device=torch.device("cpu")))
    loss = train_step(
        model, opt, x1, x2, generator=step_generator(0, 0, 0, 0, "mix"), amp_dtype=None
    )
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    return loss


def test_a_new_method_is_a_module_and_a_yaml(plugin_dir):
    cfg = compose_with(plugin_dir, ["method=toy", "mix=imixup", "backbone.net.width=8"])
    validate(cfg)
    assert method_families(cfg.method.model) == ("none", "imix")
    one_step(cfg)
    with pytest.raises(ConfigError, match="method=toy does not support mix=unmix"):
        validate(compose_with(plugin_dir, ["method=toy", "mix=unmix"]))


def test_a_new_mix_is_a_function_and_a_yaml(plugin_dir):
    cfg = compose_with(plugin_dir, ["method=npair", "mix=roll", "backbone.net.width=8"])
    validate(cfg)
    mix = build_mix(cfg)
    x = torch.arange(12.0).view(4, 3)
    m = mix.fn(x)
    assert mix.family == "imix" and m.perm.tolist() == [3, 0, 1, 2]
    assert torch.allclose(m.x[1], 0.75 * x[1] + 0.25 * x[0])
    one_step(cfg)


def test_a_new_domain_is_a_builder_and_a_yaml_and_trains(plugin_dir, tmp_path):
    cfg = compose_with(plugin_dir, ["domain=blobs", "method=toy", "mix=roll"])
    validate(cfg)
    assert cfg.backbone.name == "mlp"  # the domain picked its usual backbone
    one_step(cfg)
    domain = build_domain(cfg)
    model = build_method(cfg, build_backbone(cfg, domain.in_shape), build_mix(cfg), domain)
    result = train(
        model, domain, TrainSpec(epochs=1, batch_size=16, lr=0.05, warmup_epochs=0, amp=False),
        tmp_path, device=torch.device("cpu"),
    )  # fmt: skip
    assert result.epochs_done == 1 and result.final_loss is not None
    assert (tmp_path / "checkpoint.pt").exists()
