"""paper_repro.multiseed: G runs in one tensor program end where each run alone ends (python -m paper_repro.train)."""

from __future__ import annotations

import pytest
import torch

from collapse.losses import make_loss
from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
from paper_repro.config import TrainConfig
from paper_repro.models import make_model
from paper_repro.multiseed import GroupedAdam, GroupedMLP, GroupedSmallCNN, MLPHead, grouped_loss, train_grouped
from paper_repro.train import train


@pytest.mark.parametrize(("augment", "channels_last", "threads"),
                         [(False, False, 1), (True, False, 2), (False, True, 1), (False, True, 2)])  # fmt: skip
def test_each_grouped_run_equals_its_single_run(tmp_path, digits, augment, channels_last, threads):
    """NCHW: the grouped program computes exactly the single runs' operations (atol 1e-5 after Adam). Channels-last
    (the fast layout) changes only oneDNN's summation order; Adam's first steps move each weight by about lr
    whatever the gradient's size, so a rounding difference of a near-zero gradient can reach a few 1e-4: the
    weights are compared to 1e-3 (a quarter of the 4 steps' largest move, 4 lr) and the losses to 1e-3 relative.
    ``threads=2`` splits the runs over two threads (each run's operations unchanged)."""
    base = dict(dataset="digits", steps=4, eval_every=4, batch_classes=2, samples_per_class=6, dim=16,
                augment=augment, label_noise=0.1)  # fmt: skip
    runs = [(0, "easy", "all", 1e-3), (1, "random", "all", 3e-3), (2, "easy", "random", 1e-3)]
    cfgs = [TrainConfig(out=str(tmp_path / f"r{s}"), seed=s, positive=p, negative=n, lr=lr, **base)
            for s, p, n, lr in runs]  # fmt: skip
    grouped = train_grouped(cfgs, train_data=digits[0], test_data=digits[1], progress=False,
                            channels_last=channels_last, threads=threads)  # fmt: skip
    atol, rel = (1e-3, 1e-3) if channels_last else (1e-5, 1e-5)
    worst = 0.0
    for cfg, model, res in zip(cfgs, grouped["models"], grouped["runs"]):
        single = train(cfg, train_data=digits[0], test_data=digits[1], progress=False)
        ref = load_checkpoint(tmp_path / f"r{cfg.seed}" / CHECKPOINT)["model"]
        got = model.state_dict()
        for k in ref:
            worst = max(worst, float((ref[k].float() - got[k].float()).abs().max()))
            assert torch.allclose(ref[k].float(), got[k].float(), atol=atol), (cfg.seed, k)
        assert res["final"]["train_loss"] == pytest.approx(single["final"]["train_loss"], rel=rel)
        if not channels_last:
            assert res["final"]["recall_at_1"] == pytest.approx(single["final"]["recall_at_1"], abs=1e-9)
    print(f"largest weight difference to the single runs: {worst:.2e}")


def test_grouped_mlp_and_adam_equal_separate_heads_with_torch_adam():
    G, steps = 3, 5
    heads = []
    for g in range(G):
        torch.manual_seed(g)
        heads.append(MLPHead(12, dim=6, hidden=10))
    net = GroupedMLP(heads)
    lrs = [1e-3, 5e-3, 1e-2]
    opt = GroupedAdam(list(net.parameters()), lrs)
    singles = [torch.optim.Adam(h.parameters(), lr=lr, foreach=False) for h, lr in zip(heads, lrs)]
    rules = ("easy", "random", "easy")
    losses = [make_loss("triplet", p, "all", random_state=g) for g, p in enumerate(rules)]
    # Separate loss objects for the single runs: a random rule's stream must not be shared.
    single_losses = [make_loss("triplet", p, "all", random_state=g) for g, p in enumerate(rules)]
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(4)
    for _ in range(steps):
        x = torch.randn(G, 12, 12, generator=gen)
        total, _ = grouped_loss(losses, net(x), y.expand(G, -1))
        opt.zero_grad()
        total.backward()
        opt.step()
        for g in range(G):
            singles[g].zero_grad()
            single_losses[g](heads[g](x[g]), y).loss.backward()
            singles[g].step()
    for g in range(G):
        assert torch.allclose(net.w1[g], heads[g].fc1.weight, atol=1e-6)
        assert torch.allclose(net.b2[g], heads[g].fc2.bias, atol=1e-6)


def test_grouped_cnn_forward_and_round_trip():
    models = []
    for g in range(2):
        torch.manual_seed(g)
        models.append(make_model("small_cnn", in_channels=1, dim=8).eval())
    net = GroupedSmallCNN(models).eval()
    x = torch.randn(2, 5, 1, 9, 9)
    out = net(x)
    for g in range(2):
        assert torch.allclose(out[g], models[g](x[g]), atol=1e-5)
    back = net.to_models(lambda: make_model("small_cnn", in_channels=1, dim=8))
    for a, b in zip(back, models):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k
    with pytest.raises(ValueError, match="must have shape"):
        net(x[0])


def test_runs_that_cannot_share_a_program_are_named(tmp_path):
    a = TrainConfig(out=str(tmp_path / "a"), dataset="digits")
    with pytest.raises(ValueError, match="must share samples_per_class"):
        train_grouped([a, TrainConfig(out=str(tmp_path / "b"), dataset="digits", samples_per_class=8)])
    with pytest.raises(ValueError, match="margin-learned"):
        train_grouped([TrainConfig(out=str(tmp_path / "c"), dataset="digits", loss="margin-learned")])
