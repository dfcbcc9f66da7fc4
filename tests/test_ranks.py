"""Average ranks: the plain definition against scipy, and each fast path against its plain form.

``ranks.average_ranks_reference`` counts every rank from its definition; it is checked against
scipy once, and then serves as the oracle of ``average_ranks`` on the CPU path (packed-key sort,
tie pass on tied rows only) and on the GPU path run on the CPU (torch's sort, every row).
"""

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from rascal_train import ranks
from rascal_train.ranks import average_ranks, average_ranks_reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
PATHS = ["cpu", "gpu_path_on_cpu"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    if request.param == "gpu_path_on_cpu":  # torch's sort and the run-length pass over every row
        monkeypatch.setattr(ranks, "_host_shortcuts", lambda values: False)
    return request.param


def hard_values(rows: int, width: int, seed: int) -> torch.Tensor:
    """float64 rows holding what a sort can get wrong, all exact in bfloat16 and float16.

    Rows alternate between coarse values (many ties) and continuous ones (ties rare), so the
    CPU's tie pass meets tied and untied rows in one call; the first rows hold ±0, ±inf,
    float32's subnormals and extremes (those overflow float16 to ±inf, still exact there).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, width, generator=g, dtype=torch.float64)
    x[::2] = torch.round(x[::2] * 2) / 2
    edges = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-40, -1e-40, 2.0**-149,
                          3.0e38, -3.0e38, 0.0, -0.0, float("inf")], dtype=torch.float64)
    for r in range(min(rows, 3)):
        k = min(width, len(edges))
        x[r, torch.randperm(width, generator=g)[:k]] = edges[torch.randperm(len(edges),
                                                                          generator=g)[:k]]
    return x


# --- the definition: against scipy ---------------------------------------------------------------

def test_reference_is_scipys_average_rank_of_the_expanded_multiset():
    g = torch.Generator().manual_seed(30)
    x = torch.round(torch.randn(20, 9, generator=g, dtype=torch.float64) * 2) / 2
    counts = torch.randint(1, 4, x.shape, generator=g)
    np.testing.assert_array_equal(average_ranks_reference(x).numpy(),
                                  rankdata(-x.numpy(), "average", axis=1) - 1)
    got = average_ranks_reference(x, counts)
    for row, cnt, row_ranks in zip(x.numpy(), counts.numpy(), got.numpy()):
        want = rankdata(-np.repeat(row, cnt), "average") - 1
        np.testing.assert_array_equal(row_ranks, want[np.cumsum(cnt) - 1])


@pytest.mark.parametrize("ties", [True, False])
def test_average_ranks_match_scipy_with_ties_and_padding(ties, path):
    g = torch.Generator().manual_seed(16)
    x = torch.randn(50, 9, generator=g, dtype=torch.float64)
    if ties:
        x = torch.round(x * 2) / 2
    x[:, -2:] = float("-inf")                                                 # padding sorts last
    want = rankdata(-x[:, :-2].numpy(), "average", axis=1) - 1
    np.testing.assert_array_equal(average_ranks(x)[:, :-2].numpy(), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_average_ranks_exact_at_signed_zeros_infinities_and_subnormals(dtype):
    # The CPU sorts float32-exact values as packed float64 keys: the edges of that encoding.
    g = torch.Generator().manual_seed(23)
    x = torch.round(torch.randn(60, 30, generator=g, dtype=torch.float64) * 3) / 3
    x[0, :6] = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 0.0, -0.0])
    x[1, :4] = torch.tensor([-1e-40, 1e-40, 0.0, -1e-45])    # float32 subnormals
    x = x.to(dtype)
    want = rankdata(-x.double().numpy(), "average", axis=1) - 1
    np.testing.assert_array_equal(average_ranks(x).double().numpy(), want)


def test_average_ranks_of_a_multiset_given_by_counts_match_scipy(path):
    g = torch.Generator().manual_seed(19)
    x = torch.round(torch.randn(40, 8, generator=g, dtype=torch.float64) * 2) / 2   # ties
    counts = torch.randint(1, 4, x.shape, generator=g)
    x[:, -1], counts[:, -1] = float("-inf"), 0                                  # padding
    got = average_ranks(x, counts)
    for row, cnt, row_ranks in zip(x, counts, got):
        full = np.repeat(row[:-1].numpy(), cnt[:-1].numpy())
        want = rankdata(-full, "average") - 1
        np.testing.assert_array_equal(row_ranks[:-1].numpy(), want[np.cumsum(cnt[:-1].numpy()) - 1])


# --- the fast paths against their plain forms ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 1), (7, 2), (40, 13), (64, 250), (600, 250)],
                         ids=lambda s: "x".join(map(str, s)))
def test_argsort_desc_orders_like_torchs_argsort(shape, dtype):
    # (600, 250) is large enough to be split over threads. Ties may come in any order, so the
    # orders are compared by the values they put in each place, and the fast one must be a
    # permutation of every row.
    x = hard_values(*shape, seed=31).to(dtype)
    got = ranks._argsort_desc(x)
    want = ranks._argsort_desc_reference(x)
    assert got.dtype == torch.long and got.shape == x.shape
    assert torch.equal(got.sort(dim=-1).values, torch.arange(shape[1]).expand(shape))
    assert torch.equal(x.gather(-1, got), x.gather(-1, want))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_counts", [False, True], ids=["plain", "multiset"])
def test_average_ranks_equal_the_reference(dtype, with_counts, path):
    # -inf marks padding: the ranks of other entries are exact, those of -inf ones unspecified.
    g = torch.Generator().manual_seed(32)
    x = hard_values(90, 40, seed=33)
    x[10:, -3:] = float("-inf")
    x = x.to(dtype)
    counts = torch.randint(1, 5, x.shape, generator=g).double() if with_counts else None
    got = average_ranks(x, counts)
    want = average_ranks_reference(x, counts)
    real = x > float("-inf")
    assert got.dtype == dtype and torch.equal(got[real], want[real])


def test_tie_pass_on_tied_rows_only_equals_the_pass_over_every_row():
    # The same spans wherever the entry is not -inf, with and without counts.
    x = hard_values(50, 12, seed=34)
    x[5:, -2:] = float("-inf")
    counts = torch.randint(1, 4, x.shape, generator=torch.Generator().manual_seed(35)).double()
    for cnt in (None, counts):
        _, srt, before, through = ranks._sorted_places(x, cnt)
        fast = ranks._tied_spans_where_tied(srt, before, through).expand_as(srt)
        plain = ranks._tied_spans(srt, before, through)
        real = srt > float("-inf")
        assert torch.equal(fast[real], plain[real])


def test_any_shape_and_ndarray_input():
    x = hard_values(24, 7, seed=36)
    want = average_ranks_reference(x)
    np.testing.assert_array_equal(average_ranks(x.numpy()), want.numpy())
    assert torch.equal(average_ranks(x.reshape(2, 3, 4, 7)), want.reshape(2, 3, 4, 7))
