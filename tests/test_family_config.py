"""The family's methods and mixes compose on the embedded domains or are rejected naming why."""

from __future__ import annotations

import itertools

import pytest

from imix_sweeps.config import ConfigError, group_options, method_families, validate
from imix_sweeps.mix import FAMILIES as MIX_FAMILIES
from tests.conftest import compose

NEW_METHODS = ["simclr", "insdis", "cmc", "swav"]
NEW_MIXES = [
    "unmix",
    "unmix_global",
    "mixco",
    "im",
    "im_global",
    "im_region",
    "cutout",
    "random_erasing",
    "manifold",
]
DOMAINS = ["digits", "digits_tab"]

# what each method implements, from the one place it is declared (the method class)
FAMILIES = {name: set(method_families(o["model"])) for name, o in group_options("method").items()}


def test_families_are_declared_once_in_code_and_are_known_mix_families():
    from imix_sweeps.methods.moco import MoCo

    for name, opts in group_options("method").items():
        assert "families" not in opts, f"conf/method/{name}.yaml repeats the method's families"
        assert "none" in FAMILIES[name] and FAMILIES[name] <= set(MIX_FAMILIES), name
    assert FAMILIES["moco"] == FAMILIES["mocov2"] == set(MoCo.families)
    # every family a mix YAML names is implemented by at least one method
    assert {o["family"] for o in group_options("mix").values()} <= set().union(*FAMILIES.values())


def test_new_mixes_declare_their_family():
    opts = group_options("mix")
    fam = {n: opts[n]["family"] for n in NEW_MIXES}
    assert fam == {
        "unmix": "unmix", "unmix_global": "unmix", "mixco": "mixco", "im": "im",
        "im_global": "im", "im_region": "im", "cutout": "im", "random_erasing": "im",
        "manifold": "manifold",
    }  # fmt: skip


@pytest.mark.parametrize(
    "method,mix,domain",
    [
        *itertools.product(NEW_METHODS, group_options("mix"), DOMAINS),
        *itertools.product(["npair", "mocov2", "byol"], NEW_MIXES, DOMAINS),
    ],
)
def test_every_new_combination_composes_or_is_rejected_naming_why(method, mix, domain):
    cfg = compose([f"method={method}", f"mix={mix}", f"domain={domain}"])
    family = cfg.mix.family
    expect_ok = (
        family in FAMILIES[method]
        and cfg.domain.modality in cfg.mix.modalities
        and cfg.domain.modality in cfg.method.modalities
        and not (method == "cmc")  # no RGB domain among the embedded ones
    )
    if expect_ok:
        validate(cfg)
        return
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert f"method={method}" in msg or f"mix={mix}" in msg, msg


def test_rejections_name_the_rule():
    with pytest.raises(ConfigError, match="method=byol does not support mix=mixco"):
        validate(compose(["method=byol", "mix=mixco"]))
    with pytest.raises(ConfigError, match="mix=unmix does not apply to tabular"):
        validate(compose(["method=mocov2", "mix=unmix", "domain=digits_tab"]))
    validate(compose(["method=mocov2", "mix=unmix_global", "domain=digits_tab"]))
    with pytest.raises(ConfigError, match="method=cmc cannot run on domain=digits; domains for"):
        validate(compose(["method=cmc"]))
    with pytest.raises(ConfigError, match="method=insdis does not support mix=unmix"):
        validate(compose(["method=insdis", "mix=unmix"]))
    with pytest.raises(ConfigError, match="mix=manifold cannot run on backbone=vit"):
        validate(compose(["method=npair", "mix=manifold", "backbone.name=vit"]))


def test_experiment_presets_compose_and_validate():
    from imix_sweeps.config import CONF_DIR

    names = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    mine = [n for n in names if n.startswith(("unmix_", "mixco_", "cmc_", "insdis_", "swav_"))]
    assert mine
    for name in mine:
        cfg = compose([f"+experiment={name}"])
        assert cfg.experiment == name
        if cfg.method.name == "cmc":  # CMC presets need an RGB domain
            with pytest.raises(ConfigError, match="domain=digits"):
                validate(cfg)
        else:
            validate(cfg)
