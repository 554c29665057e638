"""Distributed contrastive learning on 2 CPU ranks (gloo, torch.multiprocessing spawn).

The DDP step of N-pair + i-Mix and MoCo + i-Mix must equal one process on the same global
batch: same loss (mean over ranks) and same gradients, with i-Mix's partners drawn within each
rank's batch and labels offset by rank x B. N-pair in its official form (``gather: local``) is
the mean of each rank's own B-way loss; ``gather: global`` scores against every rank's keys. The models here have no batch statistics (a
Linear-ReLU backbone and a Linear-ReLU-Linear head): per-rank BatchNorm would normalise each
half of the batch differently from one process over the whole batch, so BN is left out of the
equality tests on purpose. Shuffle BN is checked on its own, with a BatchNorm key encoder,
against a direct computation of what it promises.

No SLURM needed; the 2 ranks are spawned once per module and answer every test.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from imix_sweeps.data.base import InMemoryDomain, step_generator
from imix_sweeps.methods.common import shuffled_forward
from imix_sweeps.methods.moco import MoCo
from imix_sweeps.methods.npair import NPair
from imix_sweeps.mix import MixStrategy, imixup

B = 6  # per-rank batch
WORLD = 2
DIM, TAU, QUEUE, MOMENTUM = 8, 0.2, 32, 0.9


class Flat(nn.Module):
    """A backbone without batch statistics: [N, 1, 4, 4] -> [N, 12]."""

    out_dim = 12

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(x.flatten(1)))


def head() -> nn.Module:
    return nn.Sequential(nn.Linear(Flat.out_dim, 12), nn.ReLU(), nn.Linear(12, DIM))


def mix() -> MixStrategy:
    return MixStrategy(name="imixup", family="imix", fn=imixup)


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return torch.randn(WORLD * B, 1, 4, 4, generator=g), torch.randn(
        WORLD * B, 1, 4, 4, generator=g
    )


def make(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind in ("npair", "npair_local"):
        return npair_model(head(), gather="global" if kind == "npair" else "local")
    return moco_model(head())


def npair_model(head: nn.Module, *, gather: str) -> NPair:
    return NPair(
        backbone=Flat(), head=head, mix=mix(), temperature=TAU, symmetric=False, gather=gather,
        mix_temperature=TAU, mix_weight=1.0,
    )  # fmt: skip


def moco_model(head: nn.Module, *, shuffle_bn: bool = True) -> MoCo:
    return MoCo(
        backbone=Flat(), head=head, mix=mix(), dim=DIM, temperature=TAU, queue_size=QUEUE,
        momentum=MOMENTUM, symmetric=False, shuffle_bn=shuffle_bn, mix_temperature=0.05,
        mix_weight=1.0,
    )  # fmt: skip


def gen(rank: int) -> torch.Generator:
    return step_generator(0, 0, 0, rank, "mix")


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


# ------------------------------------------------------------------ the 2 ranks
def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    from imix_sweeps import dist
    from launchers.job import StopFlag, make_should_stop

    assert dist.init_from_env().world_size == WORLD
    out: dict = {}
    x1, x2 = global_batch()
    mine = slice(rank * B, (rank + 1) * B)
    for kind in ("npair", "npair_local", "moco"):
        model = make(kind)
        ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
        step = ddp(x1[mine], x2[mine], generator=gen(rank))
        step.loss.backward()
        out[kind] = {"loss": step.loss.detach(), "grads": grads(model)}
        if kind == "moco":
            out[kind]["queue"] = model.queue.keys.clone()
            out[kind]["ptr"] = model.queue.ptr.clone()

    # shuffle BN with a BatchNorm key encoder
    torch.manual_seed(1)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, DIM), nn.BatchNorm1d(DIM)).train()
    out["shuffled"] = shuffled_forward(enc, x2[mine], gen(rank))
    out["plain"] = enc(x2[mine]).detach()

    # a stop request seen by one rank stops both at the same step
    flag = StopFlag()
    should_stop = make_should_stop(flag, every=2)
    stops = []
    for step_i in range(6):
        if rank == 1 and step_i == 2:
            flag.signal = "SIGUSR2"
        stops.append(should_stop())
    out["stops"] = stops
    out["any"] = [dist.any_rank(False), dist.any_rank(rank == 0)]

    from imix_sweeps.train import TrainSpec, train

    try:  # SyncBatchNorm is CUDA-only: a CPU DDP run with train.sync_bn=true is refused
        train(
            make("npair"),
            None,
            TrainSpec(sync_bn=True),
            Path(out_dir) / f"sb{rank}",
            device=torch.device("cpu"),
        )
        out["sync_bn_error"] = None
    except ValueError as e:
        out["sync_bn_error"] = str(e)
    dist.destroy()
    torch.save(out, Path(out_dir) / f"rank{rank}.pt")


# The two ranks (spawned once, a few seconds on an idle machine) answer the tests marked slow.
@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, str(out_dir)), nprocs=WORLD, start_method="spawn")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# ------------------------------------------------------------------ single-process references
def reference_mix(x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mixes each rank draws (within its own B samples), laid out as one global batch:
    partner indices shifted by rank x B."""
    xs, perms, lams = [], [], []
    for r in range(WORLD):
        m = imixup(x1[r * B : (r + 1) * B], generator=gen(r))
        xs.append(m.x)
        perms.append(m.perm + r * B)
        lams.append(m.lam)
    return torch.cat(xs), torch.cat(perms), torch.cat(lams)


def two_target(logits: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    own = torch.arange(logits.shape[0])
    logp = logits.log_softmax(1)
    return -(lam * logp[own, own] + (1 - lam) * logp[own, perm]).mean()


def reference_npair() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model = make("npair")
    x1, x2 = global_batch()
    mixed, perm, lam = reference_mix(x1)
    q = F.normalize(model.encoder(mixed), dim=1)  # [2B, D]
    k = F.normalize(model.encoder(x2), dim=1)  # [2B, D], keys keep their gradient
    loss = two_target(q @ k.t() / TAU, perm, lam)
    loss.backward()
    return loss.detach(), grads(model)


def reference_npair_local() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The official form: each rank's B-way loss over its own keys; DDP averages the ranks."""
    model = make("npair_local")
    x1, x2 = global_batch()
    mixed, perm, lam = reference_mix(x1)
    q = F.normalize(model.encoder(mixed), dim=1)
    k = F.normalize(model.encoder(x2), dim=1)
    losses = []
    for r in range(WORLD):
        rows = slice(r * B, (r + 1) * B)
        losses.append(two_target(q[rows] @ k[rows].t() / TAU, perm[rows] - r * B, lam[rows]))
    loss = torch.stack(losses).mean()
    loss.backward()
    return loss.detach(), grads(model)


def reference_moco() -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    model = make("moco")
    x1, x2 = global_batch()
    with torch.no_grad():  # EMA step of the key encoder, before the keys
        for pk, pq in zip(model.key_encoder.parameters(), model.encoder.parameters()):
            pk.mul_(MOMENTUM).add_(pq, alpha=1 - MOMENTUM)
    mixed, perm, lam = reference_mix(x1)
    q = F.normalize(model.encoder(mixed), dim=1)
    with torch.no_grad():
        k = F.normalize(model.key_encoder(x2), dim=1)  # [2B, D] in-batch keys of both ranks
    queue = F.normalize(model.queue.keys.clone(), dim=1)
    loss = two_target(q @ torch.cat([k, queue]).t() / TAU, perm, lam)
    loss.backward()
    new_queue = model.queue.keys.clone()
    new_queue[: WORLD * B] = k
    return loss.detach(), grads(model), new_queue


# ------------------------------------------------------------------ tests
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["npair", "npair_local", "moco"])
def test_ddp_step_equals_single_process_on_the_global_batch(ranks, kind) -> None:
    if kind == "npair":
        loss, ref_grads = reference_npair()
    elif kind == "npair_local":
        loss, ref_grads = reference_npair_local()
    else:
        loss, ref_grads, _ = reference_moco()
    ddp_loss = sum(r[kind]["loss"] for r in ranks) / WORLD
    torch.testing.assert_close(ddp_loss, loss, rtol=1e-5, atol=1e-6)
    # the ranks' losses differ (different anchors): the test does compare two halves
    assert not torch.allclose(ranks[0][kind]["loss"], ranks[1][kind]["loss"])
    assert set(ref_grads) == set(ranks[0][kind]["grads"]) and ref_grads
    for r in ranks:  # DDP leaves the same averaged gradient on every rank
        for name, g in ref_grads.items():
            torch.testing.assert_close(r[kind]["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_moco_queue_gets_the_keys_of_every_rank_in_rank_order(ranks) -> None:
    _, _, queue = reference_moco()
    for r in ranks:
        torch.testing.assert_close(r["moco"]["queue"], queue, rtol=1e-5, atol=1e-6)
        assert int(r["moco"]["ptr"]) == WORLD * B


@pytest.mark.slow
def test_shuffle_bn_computes_keys_on_a_shuffled_global_batch(ranks) -> None:
    torch.manual_seed(1)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, DIM), nn.BatchNorm1d(DIM)).train()
    _, x2 = global_batch()
    perm = torch.randperm(WORLD * B, generator=gen(0))  # rank 0's permutation is broadcast
    with torch.no_grad():
        # rank c normalises the chunk c of the shuffled batch with that chunk's statistics
        k = torch.cat([enc(x2[perm[c * B : (c + 1) * B]]) for c in range(WORLD)])
    k = k[torch.argsort(perm)]  # back in the original order
    for rank, r in enumerate(ranks):
        torch.testing.assert_close(
            r["shuffled"], k[rank * B : (rank + 1) * B], rtol=1e-5, atol=1e-5
        )
        # without the shuffle, each rank's BN sees its own samples: a different result
        assert not torch.allclose(r["shuffled"], r["plain"], atol=1e-3)


@pytest.mark.slow
def test_stop_request_on_one_rank_stops_all_ranks_at_the_same_step(ranks) -> None:
    # rank 1 catches the signal before call 3; ranks agree every 2nd call: call 4 stops both
    expected = [False, False, False, True, False, True]
    assert [r["stops"] for r in ranks] == [expected, expected]
    assert [r["any"] for r in ranks] == [[False, True], [False, True]]


def test_data_is_sharded_by_rank_and_covers_the_global_batch() -> None:
    n = 40
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1)  # sample i holds the value i
    dom = InMemoryDomain(
        "ids", "tabular", 2, x, torch.zeros(n, dtype=torch.long), x[:4], torch.zeros(4),
        augment=lambda t, g: t,
    )  # fmt: skip
    dev = torch.device("cpu")
    single = list(dom.pretrain_batches(3, 8, seed=5, device=dev))
    shards = [
        list(dom.pretrain_batches(3, 8, seed=5, device=dev, rank=r, world_size=2)) for r in range(2)
    ]
    assert dom.steps_per_epoch(8, 2) == dom.steps_per_epoch(8) == len(single) == 5
    for step, (x1, _) in enumerate(single):
        r0, r1 = shards[0][step][0], shards[1][step][0]
        assert r0.shape[0] == r1.shape[0] == 4
        assert torch.equal(torch.cat([r0, r1]), x1)  # rank r holds rows r*B..(r+1)*B-1
    seen = torch.cat([b[0] for s in shards for b in s]).flatten()
    assert len(set(seen.tolist())) == len(seen) == n  # every sample once per epoch
    # a new epoch has a new order; the same epoch again the same order
    again = list(dom.pretrain_batches(3, 8, seed=5, device=dev, rank=1, world_size=2))
    other = list(dom.pretrain_batches(4, 8, seed=5, device=dev, rank=1, world_size=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, shards[1]))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(other, shards[1]))


@pytest.mark.slow
def test_sync_bn_on_cpu_ddp_is_refused_with_a_clear_error(ranks) -> None:
    for r in ranks:
        assert r["sync_bn_error"] is not None and "train.sync_bn" in r["sync_bn_error"]


def test_convert_sync_bn_keeps_shuffle_bn_in_the_moco_key_encoder() -> None:
    from imix_sweeps.heads import build_head
    from imix_sweeps.train import convert_sync_bn

    def bn_types(m: nn.Module) -> set[type]:
        return {type(x) for x in m.modules() if isinstance(x, nn.modules.batchnorm._BatchNorm)}

    moco = moco_model(build_head("mlpbn", Flat.out_dim, DIM, Flat.out_dim))
    convert_sync_bn(moco)
    assert bn_types(moco.encoder) == {nn.SyncBatchNorm}
    assert bn_types(moco.key_encoder) == {nn.BatchNorm1d}
    moco_plain = moco_model(build_head("mlpbn", Flat.out_dim, DIM, Flat.out_dim), shuffle_bn=False)
    convert_sync_bn(moco_plain)
    assert bn_types(moco_plain.key_encoder) == {nn.SyncBatchNorm}
    npair = npair_model(build_head("mlpbn", Flat.out_dim, DIM, Flat.out_dim), gather="local")
    convert_sync_bn(npair)
    assert bn_types(npair) == {nn.SyncBatchNorm}
    # the state dict is unchanged in form: checkpoints load either way
    assert set(npair.state_dict()) == set(
        npair_model(
            build_head("mlpbn", Flat.out_dim, DIM, Flat.out_dim), gather="local"
        ).state_dict()
    )
