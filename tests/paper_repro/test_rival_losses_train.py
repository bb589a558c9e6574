"""paper_repro.train with the proxy losses: the proxies are optimised, checkpointed and restored exactly."""

from __future__ import annotations

import pytest
import torch

from collapse.losses import make_loss
from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
from paper_repro.train import train


def _cfg(out, loss):
    return dict(out=str(out), dataset="digits", steps=12, eval_every=6, checkpoint_every=3, batch_classes=2,
                samples_per_class=6, lr=3e-3, dim=16, loss=loss, positive="all")  # fmt: skip


@pytest.mark.parametrize("loss", ["softtriple", "subcenter-arcface"])
def test_rival_loss_trains_checkpoints_and_resumes(tmp_path, digits, loss):
    full = train(_cfg(tmp_path / "full", loss), train_data=digits[0], test_data=digits[1], progress=False)

    class Crash(Exception):
        pass

    def crash_at_8(step):
        if step == 8:
            raise Crash

    with pytest.raises(Crash):
        train(_cfg(tmp_path / "cut", loss), train_data=digits[0], test_data=digits[1], progress=False,
              callback=crash_at_8)  # fmt: skip
    resumed = train(_cfg(tmp_path / "cut", loss), train_data=digits[0], test_data=digits[1], progress=False,
                    resume=True)  # fmt: skip
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(full["history"])
    a = load_checkpoint(tmp_path / "full" / CHECKPOINT)["loss"]
    b = load_checkpoint(tmp_path / "cut" / CHECKPOINT)["loss"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    init = make_loss(loss, "all", num_classes=2, embedding_dim=16, random_state=0).state_dict()["proxies"]
    assert a["proxies"].shape == init.shape
    assert not torch.equal(a["proxies"], init)  # trained by the optimiser, saved in the checkpoint


def test_proxy_loss_with_a_positive_rule_is_refused(tmp_path, digits):
    cfg = _cfg(tmp_path / "r", "softtriple") | {"positive": "easy"}
    with pytest.raises(ValueError, match="positive/negative"):
        train(cfg, train_data=digits[0], test_data=digits[1], progress=False)
