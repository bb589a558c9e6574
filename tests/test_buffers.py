"""collapse._buffers: a kept buffer is reused only when nothing else holds its memory."""

import threading

import pytest
import torch

from collapse import _buffers
from collapse._buffers import kept_buffer
from collapse.losses import make_loss

LIKE = torch.empty(1)


def test_reused_once_released():
    a = kept_buffer("t-reuse", (8, 4), LIKE)
    ptr = a.data_ptr()
    del a
    b = kept_buffer("t-reuse", (8, 4), LIKE)
    assert b.data_ptr() == ptr and b.shape == (8, 4) and b.is_contiguous()


def test_fresh_while_an_alias_view_or_graph_holds_it():
    a = kept_buffer("t-held", (8, 4), LIKE)
    b = kept_buffer("t-held", (8, 4), LIKE)
    assert b.data_ptr() != a.data_ptr()
    view = b[2:]
    del b
    c = kept_buffer("t-held", (8, 4), LIKE)
    assert c.data_ptr() != view.data_ptr() - 2 * 4 * 4  # the view still holds the second buffer
    del a, c
    x = torch.randn(8, 4, requires_grad=True)
    y = torch.mul(x.detach(), 2.0, out=kept_buffer("t-graph", (8, 4), LIKE))
    saved = (x * y).sum()  # autograd saves y for the product's backward
    del y
    z = kept_buffer("t-graph", (8, 4), LIKE)
    z.fill_(0.0)
    saved.backward()  # y was not overwritten: the gradient is still 2 x
    torch.testing.assert_close(x.grad, 2.0 * x.detach())


def test_shape_dtype_and_size_limit_give_fresh_buffers():
    a = kept_buffer("t-shape", (4, 4), LIKE)
    ptr = a.data_ptr()
    del a
    assert kept_buffer("t-shape", (2, 8), LIKE).shape == (2, 8)
    b = kept_buffer("t-shape", (2, 8), torch.empty(1, dtype=torch.float64))
    assert b.dtype == torch.float64 and b.data_ptr() != ptr
    big = kept_buffer("t-big", (_buffers.KEPT_BYTES // 4 + 1,), LIKE)
    assert getattr(_buffers._kept, "t-big", None) is None and big.numel() == _buffers.KEPT_BYTES // 4 + 1


def test_buffers_are_per_thread():
    mine = kept_buffer("t-thread", (4,), LIKE).data_ptr()
    seen = []
    t = threading.Thread(target=lambda: seen.append(kept_buffer("t-thread", (4,), LIKE).data_ptr()))
    t.start()
    t.join()
    assert seen and seen[0] != mine


def test_a_loss_called_twice_before_backward_keeps_both_graphs():
    # The second call must not reuse the first call's buffers while its graph is alive.
    torch.manual_seed(0)
    labels = torch.arange(64) // 4
    for name, positive, negative in [("triplet", "easy", "semihard"), ("multisimilarity", "easy", "all")]:
        loss = make_loss(name, positive, negative)
        a, b = torch.randn(64, 16, requires_grad=True), torch.randn(64, 16, requires_grad=True)
        (loss(a, labels).loss + 2.0 * loss(b, labels).loss).backward()
        ra, rb = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
        loss(ra, labels).loss.backward()
        (2.0 * loss(rb, labels).loss).backward()
        torch.testing.assert_close(a.grad, ra.grad, rtol=0, atol=0)
        torch.testing.assert_close(b.grad, rb.grad, rtol=0, atol=0)


@pytest.mark.parametrize(
    "rules",
    [("triplet", "easy", "semihard"), ("multisimilarity", "easy", "all"), ("contrastive", "random", "all"),
     ("margin", "easy", "distance"), ("supcon", "easy", "all")],
    ids=lambda r: "-".join(r),
)  # fmt: skip
def test_inference_mode_and_training_do_not_share_buffers(rules):
    # A buffer made under inference_mode is an inference tensor: it may not be written outside that mode, and
    # autograd may not save it. Evaluating a loss under inference_mode and then training with it must work.
    loss = make_loss(*rules)
    x, labels = torch.randn(64, 16), torch.arange(64) // 4
    with torch.inference_mode():
        before = loss(x, labels).loss
    e = x.clone().requires_grad_()
    value = loss(e, labels).loss
    value.backward()
    with torch.inference_mode():
        after = loss(x, labels).loss
    assert e.grad is not None and torch.isfinite(e.grad).all()
    if rules[1] != "random" and rules[2] not in ("random", "distance"):
        assert torch.equal(before, after) and torch.equal(value.detach(), before)
