"""Background augmentation threads (``prefetch``) and the host allocator settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from imix_sweeps.data.base import run_ahead
from imix_sweeps.data.digits import digits, digits_rgb


@pytest.mark.parametrize("make", [digits, digits_rgb])
@pytest.mark.parametrize("with_index", [False, True])
def test_prefetch_gives_the_same_batches(make, with_index) -> None:
    dom = make()
    kw = dict(seed=3, device=torch.device("cpu"), start_step=2, with_index=with_index)
    plain = list(dom.pretrain_batches(1, 64, **kw))
    ahead = list(dom.pretrain_batches(1, 64, prefetch=3, **kw))
    assert len(plain) == len(ahead) == dom.steps_per_epoch(64) - 2
    for a, b in zip(plain, ahead, strict=True):
        assert len(a) == len(b) == (3 if with_index else 2)
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v)
    # the two views of a step differ (independent draws per sample)
    assert not torch.equal(plain[0][0], plain[0][1])


def test_two_views_draw_independently_per_sample() -> None:
    dom = digits()
    x = dom._to_float(dom.train_x[:32])
    v1, v2 = dom.two_views(x, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == x.shape
    differs = (v1 - v2).flatten(1).abs().amax(1) > 1e-6
    assert differs.float().mean() > 0.9


def test_run_ahead_keeps_order_and_runs_in_threads() -> None:
    names: set[str] = set()

    def fn(i: int) -> int:
        names.add(threading.current_thread().name)
        return i * i

    assert list(run_ahead(fn, range(20), 3)) == [i * i for i in range(20)]
    assert names and all(n.startswith("imix-prefetch") for n in names)
    assert list(run_ahead(fn, range(5), 0)) == [0, 1, 4, 9, 16]
    assert list(run_ahead(fn, [], 2)) == []


def test_run_ahead_raises_at_the_failing_item_and_stops_on_close() -> None:
    calls: list[int] = []

    def fn(i: int) -> int:
        calls.append(i)
        if i == 4:
            raise ValueError("bad item 4")
        return i

    it = run_ahead(fn, range(100), 2)
    assert [next(it) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="bad item 4"):
        next(it)
    # closing early: nothing keeps running in the background
    started: list[int] = []
    it2 = run_ahead(lambda i: started.append(i) or i, range(10_000), 2)
    assert next(it2) == 0
    it2.close()
    n = len(started)
    assert n <= 8  # at most the look-ahead window ran
    time.sleep(0.1)
    assert len(started) == n  # and nothing started after close()


def _tune_in_subprocess(env_extra: dict[str, str]) -> str:
    code = "from imix_sweeps import hostmem; print(hostmem.tune_malloc(), hostmem.tune_malloc())"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "IMIX_TUNE_MALLOC")
    }
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_applies_once_and_respects_opt_outs() -> None:
    assert _tune_in_subprocess({}) == "True True"
    assert _tune_in_subprocess({"IMIX_TUNE_MALLOC": "0"}) == "False False"
    assert _tune_in_subprocess({"MALLOC_TRIM_THRESHOLD_": "1000000"}) == "False False"
