"""The Domain and Method contracts: every domain and method implements them as stated."""

from __future__ import annotations

import inspect

import pytest
import torch

from imix_sweeps.config import group_options, method_class, method_families
from imix_sweeps.contracts import Domain, MethodHooks
from imix_sweeps.data.base import InMemoryDomain
from imix_sweeps.data.loader import LoaderDomain

CONTRACT = [
    name
    for name, member in vars(Domain).items()
    if not name.startswith("_") and (callable(member) or isinstance(member, property))
]


@pytest.mark.parametrize("cls", [InMemoryDomain, LoaderDomain])
def test_domains_implement_every_member_with_the_stated_signature(cls):
    assert Domain in cls.__mro__
    assert {"pretrain_batches", "linear_batches", "eval_batches", "in_shape"} <= set(CONTRACT)
    for name in CONTRACT:
        mine, stated = inspect.getattr_static(cls, name), vars(Domain)[name]
        assert mine is not stated, f"{cls.__name__} does not implement {name}"
        if isinstance(stated, property):
            assert isinstance(mine, property), (cls.__name__, name)
            continue
        want = inspect.signature(stated).parameters
        have = inspect.signature(mine).parameters
        # the stated parameters, in order and of the same kind and default; extra ones only
        # optional keyword-only ones after them
        assert list(have)[: len(want)] == list(want), (cls.__name__, name)
        for p in want:
            assert (have[p].kind, have[p].default) == (want[p].kind, want[p].default), (name, p)
        for p in list(have)[len(want) :]:
            assert have[p].kind is inspect.Parameter.KEYWORD_ONLY, (name, p)
            assert have[p].default is not inspect.Parameter.empty, (name, p)


@pytest.mark.parametrize("name", sorted(group_options("method")))
def test_every_method_class_has_the_hooks_and_declares_its_families(name):
    cls = method_class(group_options("method")[name]["model"]["_target_"])
    assert issubclass(cls, MethodHooks) and issubclass(cls, torch.nn.Module), cls
    assert "families" in vars(cls), f"{cls.__name__} must declare the mix families it implements"
    assert method_families(group_options("method")[name]["model"]) == cls.families
    assert isinstance(cls.needs_index, bool) and isinstance(cls.shuffle_bn, bool)


def test_memory_bank_methods_are_the_ones_that_need_indices():
    from imix_sweeps.methods import BYOL, CMC, InsDis, MoCo, NPair, SimCLR, SwAV

    assert {
        c.__name__ for c in (CMC, BYOL, InsDis, MoCo, NPair, SimCLR, SwAV) if c.needs_index
    } == {
        "CMC",
        "InsDis",
    }
