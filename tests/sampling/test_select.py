"""``row_argmin`` (the blocked argmin of collapse.sampling._select) returns exactly ``argmin``'s indices: the
first minimum, with ties, NaN, any leading shape and row lengths with and without a block size."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.sampling._select import row_argmin


@given(
    length=st.sampled_from([8, 63, 64, 96, 128, 256, 500, 512, 1024]),
    rows=st.integers(0, 5),
    levels=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_row_argmin_is_argmin_with_ties(length, rows, levels, seed):
    gen = torch.Generator().manual_seed(seed)
    # Few distinct values: most rows hold their minimum several times, in several blocks.
    values = torch.randint(0, levels, (rows, length), generator=gen).float()
    assert torch.equal(row_argmin(values), values.argmin(-1))


@pytest.mark.parametrize("shape", [(2, 3, 512), (1, 1024), (4, 256)])
def test_row_argmin_nan_and_leading_dims(shape):
    values = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    values[..., 300 % shape[-1]] = float("nan")
    values[0, ..., 5] = float("nan")
    assert torch.equal(row_argmin(values), values.argmin(-1))
    flipped = values.transpose(-1, -2).contiguous().transpose(-1, -2)  # the same values, not contiguous
    assert torch.equal(row_argmin(flipped), values.argmin(-1))
