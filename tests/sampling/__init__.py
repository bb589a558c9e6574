"""Naive python-loop oracles and hypothesis strategies shared by the sampling tests.

The oracles work on nested lists (a distance matrix ``D[a][j]`` and a label list), never on the code under test.
"""

import torch
from hypothesis import strategies as st


def same_label_candidates(D, labels, a, exclude=None):
    return [
        j for j in range(len(labels)) if j != a and labels[j] == labels[a] and (exclude is None or D[a][j] > exclude)
    ]


def naive_positive_pairs(rule, D, labels, exclude=None):
    """``(pairs, anchors_without_positive)`` for the deterministic positive rules, lowest index on ties."""
    pairs, missing = [], 0
    for a in range(len(labels)):
        cands = same_label_candidates(D, labels, a, exclude)
        if not cands:
            missing += 1
        elif rule == "all":
            pairs += [(a, j) for j in cands]
        elif rule == "easy":
            pairs.append((a, min(cands, key=lambda j: (D[a][j], j))))
        elif rule == "hard":
            pairs.append((a, min(cands, key=lambda j: (-D[a][j], j))))
        else:
            raise ValueError(rule)
    return pairs, missing


def naive_negative(rule, D, labels, a, p):
    """The hard or semi-hard negative of the pair ``(a, p)`` (lowest index on ties), or None."""
    cands = [j for j in range(len(labels)) if labels[j] != labels[a]]
    if rule == "semihard":
        cands = [j for j in cands if D[a][j] > D[a][p]]
    elif rule != "hard":
        raise ValueError(rule)
    return min(cands, key=lambda j: (D[a][j], j)) if cands else None


def naive_tuples(positive, negative, D, labels, exclude=None):
    """Naive ``(positive pairs, negative pairs, triplets, without_positive, without_negative)`` of one group."""
    pos, missing = naive_positive_pairs(positive, D, labels, exclude)
    anchors = sorted({a for a, _ in pos})
    if negative == "all":
        neg = [(a, j) for a in anchors for j in range(len(labels)) if labels[j] != labels[a]]
        trip = [(a, p, n) for a, p in pos for b, n in neg if b == a]
        lacking = sum(1 for a in anchors if not any(b == a for b, _ in neg))
        return sorted(pos), sorted(neg), sorted(trip), missing, lacking
    trip = []
    for a, p in pos:
        n = naive_negative(negative, D, labels, a, p)
        if n is not None:
            trip.append((a, p, n))
    kept = {a for a, _, _ in trip}
    pos_t = sorted((a, p) for a, p, _ in trip)
    neg_t = sorted((a, n) for a, _, n in trip)
    return pos_t, neg_t, sorted(trip), missing, sum(1 for a in anchors if a not in kept)


def as_lists(pairs_or_triplets, group=None):
    """Sorted python tuples of a Pairs/Triplets (optionally only those of one group, without the group column)."""
    cols = [pairs_or_triplets.g] + [
        getattr(pairs_or_triplets, k) for k in ("a", "b", "p", "n") if hasattr(pairs_or_triplets, k)
    ]
    rows = list(zip(*[c.tolist() for c in cols]))
    if group is not None:
        rows = [r[1:] for r in rows if r[0] == group]
    return sorted(rows)


@st.composite
def tied_groups(draw, max_groups=3, max_batch=9, max_label=3, max_dist=4):
    """``(D, labels)`` float64 ``(G, B, B)`` / ``(G, B)`` tensors with small symmetric integer distances (many ties)."""
    n_groups = draw(st.integers(1, max_groups))
    batch = draw(st.integers(2, max_batch))
    mats, labs = [], []
    for _ in range(n_groups):
        labs.append(draw(st.lists(st.integers(0, max_label), min_size=batch, max_size=batch)))
        upper = draw(st.lists(st.integers(0, max_dist), min_size=batch * batch, max_size=batch * batch))
        D = [[0.0] * batch for _ in range(batch)]
        for i in range(batch):
            for j in range(i + 1, batch):
                D[i][j] = D[j][i] = float(upper[i * batch + j])
        mats.append(D)
    return torch.tensor(mats, dtype=torch.float64), torch.tensor(labs, dtype=torch.long)
