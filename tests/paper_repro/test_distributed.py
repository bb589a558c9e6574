"""paper_repro.distributed on CPU with gloo and 2 processes: the loss on the all-gathered global batch, its gradients
and DDP's parameter gradients equal the single-process ones on the same global batch (float64), and train() runs
data-parallel when RANK / WORLD_SIZE are set."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from collapse.losses import make_loss
from paper_repro import distributed as D

WORLD = 2
CASES = {
    "triplet-easy-semihard": ("triplet", "easy", "semihard"),
    "triplet-random-hard": ("triplet", "random", "hard"),
    "margin-learned-easy-distance": ("margin-learned", "easy", None),
    "multisimilarity-easy-all": ("multisimilarity", "easy", None),
    "contrastive-easy-all": ("contrastive", "easy", None),
    "nca-easy-all": ("nca", "easy", None),
}
N_CLASSES, PER_CLASS, IN_DIM, DIM = 4, 4, 6, 5


def global_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_CLASSES * PER_CLASS, IN_DIM, generator=g, dtype=torch.float64)
    labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    return x, labels


def new_model():
    torch.manual_seed(1)
    return nn.Linear(IN_DIM, DIM).double()


def new_loss(case):
    name, pos, neg = CASES[case]
    return make_loss(name, pos, neg, num_classes=N_CLASSES, random_state=0).double()


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    ctx = D.from_env("cpu")
    x, labels = global_batch()
    x_local, y_local = D.rank_slice(x, rank, WORLD), D.rank_slice(labels, rank, WORLD)
    results = {}
    for case in CASES:
        # 1. embeddings: unscaled loss, gradient w.r.t. this rank's rows only.
        loss = new_loss(case)
        emb = nn.functional.normalize(x_local.clone(), dim=1).requires_grad_(True)
        out = D.GlobalBatchLoss(loss, ctx)(emb, y_local)
        out.loss.backward()
        # 2. parameters: DDP-averaged gradients after backward_global's scaling.
        model = new_model()
        ddp = nn.parallel.DistributedDataParallel(model)
        loss2 = new_loss(case)
        out2 = D.GlobalBatchLoss(loss2, ctx)(ddp(x_local), y_local)
        D.backward_global(out2.loss, ctx, loss2.parameters())
        results[case] = {
            "loss": out.loss.detach(),
            "emb_grad": emb.grad,
            "loss2": out2.loss.detach(),
            "param_grads": [p.grad.clone() for p in model.parameters()],
            "loss_param_grads": [p.grad.clone() for p in loss2.parameters()],
        }
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))

    # 3. train() under torchrun-style variables: the loss sees the global batch, rank 0 writes the run.
    from paper_repro.train import train

    cfg = dict(out=os.path.join(out_dir, "run"), dataset="digits", steps=4, eval_every=4, batch_classes=4,
               samples_per_class=4, dim=8, loss="triplet", positive="easy", negative="semihard")  # fmt: skip
    train(cfg, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_rank_slice_and_gather_order_are_inverse():
    batch = torch.arange(24).reshape(12, 2)
    for world in (1, 2, 3, 4, 6):
        parts = [D.rank_slice(batch, r, world) for r in range(world)]
        assert torch.equal(torch.stack(parts, dim=1).reshape(-1, 2), batch)
    with pytest.raises(ValueError, match="split evenly over 5 ranks"):
        D.rank_slice(batch, 0, 5)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_global_loss_and_embedding_gradients_equal_single_process(two_ranks, case):
    _, ranks = two_ranks
    x, labels = global_batch()
    emb = nn.functional.normalize(x.clone(), dim=1).requires_grad_(True)
    ref = new_loss(case)(emb, labels)
    ref.loss.backward()
    summed = torch.zeros_like(emb)
    for r, res in enumerate(ranks):
        assert torch.allclose(res[case]["loss"], ref.loss.detach(), rtol=1e-12, atol=1e-12)
        summed[r::WORLD] += res[case]["emb_grad"]
    assert emb.grad.abs().sum() > 0
    assert torch.allclose(summed, emb.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_ddp_parameter_gradients_equal_single_process(two_ranks, case):
    _, ranks = two_ranks
    x, labels = global_batch()
    model, loss = new_model(), new_loss(case)
    out = loss(model(x), labels)
    out.loss.backward()
    for res in ranks:
        assert torch.allclose(res[case]["loss2"], out.loss.detach(), rtol=1e-12, atol=1e-12)
        for got, want in zip(res[case]["param_grads"], model.parameters()):
            assert torch.allclose(got, want.grad, rtol=1e-10, atol=1e-12)
        for got, want in zip(res[case]["loss_param_grads"], loss.parameters()):
            assert torch.allclose(got, want.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_train_runs_data_parallel(two_ranks):
    out, _ = two_ranks
    saved = json.loads((out / "run" / "metrics.json").read_text())
    assert saved["finished"] and saved["final"]["step"] == 4
    assert json.loads((out / "run" / "config.json").read_text())["world_size"] == WORLD
    assert 0.0 <= saved["final"]["recall_at_1"] <= 1.0
