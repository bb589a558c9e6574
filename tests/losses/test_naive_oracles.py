"""Naive-loop oracles for what pytorch-metric-learning lacks: distance-weighted negatives with easy positives, the
easy-positive NCA loss, multi-similarity with easy positives, the reducers, and batched groups."""

import math

import pytest
import torch

from collapse.losses import (
    AvgNonZeroReducer,
    ContrastiveLoss,
    DivisorReducer,
    EasyPositiveNCALoss,
    MarginLoss,
    MeanReducer,
    MultiSimilarityLoss,
    SumReducer,
    Terms,
    TripletMarginLoss,
    make_loss,
)
from collapse.sampling import Sampler

# ---------------------------------------------------------------------------------------------- naive geometry


def _unit_rows(emb):
    rows = emb.tolist()
    return [[v / math.sqrt(sum(u * u for u in r)) for v in r] for r in rows]


def naive_cos_sim(emb):
    u = _unit_rows(emb)
    return [[sum(a * b for a, b in zip(x, y)) for y in u] for x in u]


def naive_sphere_dist(emb):
    u = _unit_rows(emb)
    return [[math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y))) for y in u] for x in u]


def naive_easy_positive(score, labels, a, larger_is_closer=False):
    same = [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]
    if not same:
        return None
    key = (lambda j: (-score[a][j], j)) if larger_is_closer else (lambda j: (score[a][j], j))
    return min(same, key=key)


def _terms_rows(terms):
    return list(zip(*[i.tolist() for i in terms.indices])), terms.losses.tolist()


# ---------------------------------------------------------------------------------------------- DW with EPS


@pytest.mark.parametrize("seed", range(3))
def test_triplet_easy_distance_weighted(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 5), dim=4)
    lab, D = labels.tolist(), naive_sphere_dist(emb)
    loss = TripletMarginLoss(margin=0.2, sampler=Sampler("easy", "distance", random_state=seed))
    out = loss(emb, labels)
    rows, values = _terms_rows(out.terms["triplet_loss"])
    assert len(rows) > 0
    for (a, p, n), value in zip(rows, values):
        assert p == naive_easy_positive(D, lab, a)
        # A valid distance-weighted candidate: a different label, closer than nonzero_loss_cutoff (weight > 0).
        assert lab[n] != lab[a] and D[a][n] < 1.4
        assert value == pytest.approx(max(0.0, D[a][p] - D[a][n] + 0.2), rel=1e-10, abs=1e-12)
    # One triplet per anchor that has a valid candidate.
    expected = [a for a in range(len(lab)) if any(lab[j] != lab[a] and D[a][j] < 1.4 for j in range(len(lab)))]
    assert sorted(a for a, _, _ in rows) == expected
    positive = [v for v in values if v > 0]
    ref = sum(positive) / len(positive) if positive else 0.0
    assert float(out.loss) == pytest.approx(ref, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_margin_easy_distance_weighted(make_batch, seed):
    emb, labels = make_batch(seed + 10, n_classes=3, per_class=(2, 5), dim=4)
    lab, D = labels.tolist(), naive_sphere_dist(emb)
    out = MarginLoss(margin=0.2, beta=1.0, sampler=Sampler("easy", "distance", random_state=seed))(emb, labels)
    rows_p, pos = _terms_rows(out.terms["pos_loss"])
    rows_n, neg = _terms_rows(out.terms["neg_loss"])
    assert rows_p == rows_n and len(rows_p) > 0
    for (a, p, n), lp, ln in zip(rows_p, pos, neg):
        assert p == naive_easy_positive(D, lab, a) and lab[n] != lab[a] and D[a][n] < 1.4
        assert lp == pytest.approx(max(0.0, D[a][p] - 1.0 + 0.2), abs=1e-12)
        assert ln == pytest.approx(max(0.0, 1.0 - D[a][n] + 0.2), abs=1e-12)
    nonzero = sum(v > 0 for v in pos + neg)
    assert nonzero > 0
    assert float(out.loss) == pytest.approx((sum(pos) + sum(neg)) / nonzero, rel=1e-10)


# ---------------------------------------------------------------------------------------------- NCA and MS


def _naive_nca(S, lab, positive, negative, tau):
    losses = []
    for a in range(len(lab)):
        same = [j for j in range(len(lab)) if j != a and lab[j] == lab[a]]
        diff = [j for j in range(len(lab)) if lab[j] != lab[a]]
        if not same:
            continue
        if positive == "easy":
            same = [min(same, key=lambda j: (-S[a][j], j))]
        for p in same:
            negs = diff if negative == "all" else [min(diff, key=lambda j: (-S[a][j], j))]
            num = math.exp(S[a][p] / tau)
            losses.append(-math.log(num / (num + sum(math.exp(S[a][n] / tau) for n in negs))))
    return losses


@pytest.mark.parametrize("positive", ["easy", "all"])
@pytest.mark.parametrize("negative", ["all", "hard"])
@pytest.mark.parametrize("seed", range(3))
def test_easy_positive_nca(make_batch, positive, negative, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 4), dim=5)
    tau = 0.2
    loss = EasyPositiveNCALoss(temperature=tau, sampler=Sampler(positive, negative))
    out = loss(emb, labels)
    ref = _naive_nca(naive_cos_sim(emb), labels.tolist(), positive, negative, tau)
    assert sorted(out.terms["loss"].losses.tolist()) == pytest.approx(sorted(ref), rel=1e-10, abs=1e-12)
    assert float(out.loss) == pytest.approx(sum(ref) / len(ref), rel=1e-10)


def test_nca_default_is_easy_positive_with_all_negatives(make_batch):
    emb, labels = make_batch(7, n_classes=3, per_class=3, dim=4)
    ref = _naive_nca(naive_cos_sim(emb), labels.tolist(), "easy", "all", 0.1)
    assert float(make_loss("nca")(emb, labels).loss) == pytest.approx(sum(ref) / len(ref), rel=1e-10)


def _naive_ms(S, lab, negative, alpha, beta, base):
    losses = []
    for a in range(len(lab)):
        p = naive_easy_positive(S, lab, a, larger_is_closer=True)
        if p is None:
            continue
        diff = [j for j in range(len(lab)) if lab[j] != lab[a]]
        negs = diff if negative == "all" else [min(diff, key=lambda j: (-S[a][j], j))]
        pos_term = math.log(1 + math.exp(-alpha * (S[a][p] - base))) / alpha
        neg_term = math.log(1 + sum(math.exp(beta * (S[a][n] - base)) for n in negs)) / beta
        losses.append(pos_term + neg_term)
    return losses


@pytest.mark.parametrize("negative", ["all", "hard"])
@pytest.mark.parametrize("seed", range(3))
def test_multisimilarity_easy_positive(make_batch, negative, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 4), dim=5)
    # A singleton anchor is dropped (not averaged in as PML's element-wise mean would).
    emb = torch.cat([emb, torch.randn(1, 5, dtype=emb.dtype, generator=torch.Generator().manual_seed(seed))])
    labels = torch.cat([labels, torch.tensor([50])])
    out = MultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.5, sampler=Sampler("easy", negative))(emb, labels)
    ref = _naive_ms(naive_cos_sim(emb), labels.tolist(), negative, 2.0, 10.0, 0.5)
    assert len(out.terms["loss"]) == len(ref) == len(labels) - 1
    assert float(out.loss) == pytest.approx(sum(ref) / len(ref), rel=1e-10)


# ---------------------------------------------------------------------------------------------- reducers


def _terms(values, groups):
    values = torch.tensor(values, dtype=torch.float64)
    idx = torch.arange(len(values))
    return Terms(values, torch.tensor(groups, dtype=torch.long), (idx,), "anchor")


TERMS = {
    "pos_loss": ([0.0, 0.5, 1.5, 0.0, 2.0, 0.0], [0, 0, 0, 1, 1, 3]),
    "neg_loss": ([0.25, 0.0, 0.0, 3.0], [0, 1, 1, 3]),
}


def _loop(values, groups, g, how):
    vals = [v for v, h in zip(values, groups) if h == g]
    if how == "sum":
        return sum(vals)
    count = len(vals) if how == "mean" else sum(v > 0 for v in vals)
    return sum(vals) / count if count else 0.0


@pytest.mark.parametrize("reducer,how", [(MeanReducer(), "mean"), (SumReducer(), "sum"), (AvgNonZeroReducer(), "nz")])
def test_reducers_match_loops(reducer, how):
    terms = {k: _terms(*v) for k, v in TERMS.items()}
    got = reducer(terms, 4, torch.zeros(1, dtype=torch.float64))
    ref = [sum(_loop(*TERMS[k], g, how) for k in TERMS) for g in range(4)]  # group 2 has no terms: 0
    assert got.tolist() == pytest.approx(ref, rel=1e-12)


def test_divisor_reducer_matches_loop():
    terms = {k: _terms(*v) for k, v in TERMS.items()}
    terms["beta_reg_loss"] = _terms([0.1, 0.2, 0.4], [0, 1, 3])  # summed, never counted
    got = DivisorReducer()(terms, 4, torch.zeros(1, dtype=torch.float64))
    ref = []
    for g in range(4):
        total = sum(v for vals, grp in TERMS.values() for v, h in zip(vals, grp) if h == g)
        total += sum(v for v, h in zip([0.1, 0.2, 0.4], [0, 1, 3]) if h == g)
        count = sum(v > 0 for vals, grp in TERMS.values() for v, h in zip(vals, grp) if h == g)
        ref.append(total / count if count else 0.0)
    assert got.tolist() == pytest.approx(ref, rel=1e-12)
    assert got[2] == 0  # nothing to divide by


@pytest.mark.parametrize("reducer", ["mean", "sum", "avg_nonzero"])
def test_loss_reducer_choice(make_batch, reducer):
    emb, labels = make_batch(3, n_classes=3, per_class=3, dim=4)
    lab, D = labels.tolist(), naive_sphere_dist(emb)
    out = TripletMarginLoss(margin=0.5, sampler=Sampler("all", "all"), reducer=reducer)(emb, labels)
    vals = [
        max(0.0, D[a][p] - D[a][n] + 0.5)
        for a in range(len(lab))
        for p in range(len(lab))
        for n in range(len(lab))
        if p != a and lab[p] == lab[a] and lab[n] != lab[a]
    ]
    ref = {"mean": sum(vals) / len(vals), "sum": sum(vals), "avg_nonzero": sum(vals) / sum(v > 0 for v in vals)}
    assert float(out.loss) == pytest.approx(ref[reducer], rel=1e-10)


# ---------------------------------------------------------------------------------------------- batched groups

DETERMINISTIC_LOSSES = {
    "triplet easy/semihard": lambda: TripletMarginLoss(sampler=Sampler("easy", "semihard")),
    "triplet-sq all/all": lambda: make_loss("triplet-sq"),
    "contrastive easy/hard": lambda: ContrastiveLoss(sampler=Sampler("easy", "hard")),
    "contrastive all/all": lambda: make_loss("contrastive"),
    "margin hard/hard": lambda: MarginLoss(sampler=Sampler("hard", "hard")),
    "multisimilarity easy/all": lambda: MultiSimilarityLoss(sampler=Sampler("easy", "all")),
    "multisimilarity all/all": lambda: make_loss("multisimilarity"),
    "nca easy/all": lambda: make_loss("nca"),
    "nca easy/hard": lambda: EasyPositiveNCALoss(sampler=Sampler("easy", "hard")),
}


@pytest.mark.parametrize("name", list(DETERMINISTIC_LOSSES))
def test_per_group_equals_single_group(make_batch, name):
    emb, labels = make_batch(4, n_classes=3, per_class=(2, 4), dim=5, groups=3)
    loss = DETERMINISTIC_LOSSES[name]()
    x = emb.clone().requires_grad_()
    out = loss(x, labels)
    assert out.per_group.shape == (3,)
    torch.testing.assert_close(out.loss, out.per_group.sum())
    (grad0,) = torch.autograd.grad(out.per_group[0], x)
    assert bool((grad0[1:] == 0).all()) and bool((grad0[0] != 0).any())  # groups never interact
    for g in range(3):
        single = DETERMINISTIC_LOSSES[name]()(emb[g], labels[g])
        torch.testing.assert_close(out.per_group[g], single.loss, rtol=1e-12, atol=1e-14)


def test_margin_learned_beta_per_group_equals_single(make_batch):
    G, C = 3, 4
    emb, labels = make_batch(9, n_classes=C, per_class=(2, 4), dim=5, groups=G)
    loss = MarginLoss(learn_beta=True, num_classes=C, num_groups=G, nu=0.05, sampler=Sampler("easy", "semihard"))
    assert loss.beta.shape == (G, C)
    betas = 0.8 + 0.1 * torch.arange(G * C, dtype=torch.float32).reshape(G, C) / (G * C)
    with torch.no_grad():
        loss.beta.copy_(betas)
    out = loss(emb, labels)
    out.loss.backward()
    for g in range(G):
        single = MarginLoss(learn_beta=True, num_classes=C, nu=0.05, sampler=Sampler("easy", "semihard"))
        with torch.no_grad():
            single.beta.copy_(betas[g : g + 1])
        ref = single(emb[g], labels[g])
        torch.testing.assert_close(out.per_group[g], ref.loss, rtol=1e-12, atol=1e-14)
        ref.loss.backward()
        torch.testing.assert_close(loss.beta.grad[g], single.beta.grad[0], rtol=1e-6, atol=1e-7)
