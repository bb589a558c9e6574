r"""Pull and push on one anchor: the chain-rule split of the triplet loss's gradient (figure (a)).

For an anchor :math:`a` with positive :math:`p` and negatives :math:`\mathcal N_a`, the anchor's loss
:math:`\ell_a = \frac{1}{|\mathcal N_a|}\sum_{n} [D_{ap} - D_{an} + \alpha]_+` depends on :math:`z_a` through
:math:`D_{ap}` and through the :math:`D_{an}`. Autograd with the other distances detached gives each part:
the *pull* :math:`-\nabla_{z_a}` through :math:`D_{ap}` and the *push* through the :math:`D_{an}`; their sum is the
full gradient.
"""

from __future__ import annotations

import numpy as np
import torch

from collapse.losses import make_loss

__all__ = ["anchor_forces", "pick_anchor"]


def anchor_forces(
    embeddings: torch.Tensor, labels: torch.Tensor, anchor: int, positive: str, *, margin: float = 0.2, seed: int = 0
) -> dict:
    """Pull and push on ``anchor`` from the triplet loss with ``positive`` positives and all negatives.

    ``embeddings`` (n, d) are one batch. The sampler draws every anchor's positive (seeded by ``seed``); the
    anchor's terms are averaged and differentiated with the negative distances detached (pull) and with the
    positive distance detached (push). ``pull + push`` is the full gradient. Returns the positive's index, the
    two forces (minus the gradients), the anchor's loss and its fraction of active triplets.
    """
    loss = make_loss("triplet", positive, "all", margin=margin, reducer="mean", random_state=seed)
    z = torch.as_tensor(embeddings).detach().double().clone().requires_grad_(True)
    y = torch.as_tensor(labels).reshape(1, -1)
    dist = loss.distance(z.unsqueeze(0))
    tuples = loss.sampler(dist.detach(), y, dim=z.shape[-1])
    pos_mask = tuples.positive_pairs.mask(1, z.shape[0])
    forces = {}
    for part, keep in (("pull", pos_mask), ("push", ~pos_mask)):
        # Detaching the other distances leaves exactly this part of the chain rule.
        d = torch.where(keep, dist, dist.detach())
        terms = loss.compute_terms(d, tuples, y)["triplet_loss"]
        mine = terms.indices[0] == anchor
        (grad,) = torch.autograd.grad(terms.losses[mine].mean(), z, retain_graph=True)
        forces[part] = (-grad[anchor]).numpy()
        forces["loss"] = float(terms.losses[mine].detach().mean())
        forces["active"] = float((terms.losses[mine] > 0).double().mean())
        forces["positive"] = int(terms.indices[1][mine][0])
    return forces


def pick_anchor(
    snapshots: list[torch.Tensor],
    labels: np.ndarray,
    modes: np.ndarray,
    *,
    anchor_class: int = 0,
    margin: float = 0.2,
    seed: int = 0,
) -> int:
    """An illustrative anchor: the first sample (classes from ``anchor_class`` on, data order) whose random positive
    at the first snapshot lies in another mode, whose easy positive lies in its own mode at every snapshot (a mode
    that stayed distinct) and whose easy positive still pulls it at the first snapshot; the last condition is dropped
    if no sample meets all three, and the first sample of ``anchor_class`` is the fallback."""
    labels, modes = np.asarray(labels), np.asarray(modes)
    y = torch.as_tensor(labels)
    n_classes = int(labels.max()) + 1
    order = [(anchor_class + i) % n_classes for i in range(n_classes)]
    fallback = None
    for c in order:
        for a in np.flatnonzero(labels == c):
            a = int(a)
            rand = anchor_forces(snapshots[0], y, a, "random", margin=margin, seed=seed)["positive"]
            if modes[rand] == modes[a]:
                continue
            easy = [anchor_forces(s, y, a, "easy", margin=margin, seed=seed) for s in snapshots]
            if all(modes[e["positive"]] == modes[a] for e in easy):
                if np.linalg.norm(easy[0]["pull"]) > 1e-6:
                    return a
                fallback = a if fallback is None else fallback
    return fallback if fallback is not None else int(np.flatnonzero(labels == anchor_class)[0])
