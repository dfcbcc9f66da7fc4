"""Row normalisation shared by the metrics: checked and scaled a block at a time, and done once
per analysis (``UnitRows``)."""

import numpy as np
import pytest

from rascal_geom.metrics import (
    attribute_consistency,
    geodesic_variance,
    geometry_summary,
    hierarchy_retention,
    rank_stability,
    retrieval_metrics,
    within_coarse_retrieval,
)
from rascal_geom.metrics import _inputs
from rascal_geom.metrics._inputs import UnitRows, normalize_rows, unit_rows
from rascal_train.errors import RascalError


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 8 rows at width 16, so that a few dozen rows span several blocks."""
    monkeypatch.setattr(_inputs, "BLOCK_ELEMENTS", 128)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_unit_rows_equal_normalising_the_whole(small_blocks, dtype):
    x = np.random.default_rng(0).standard_normal((61, 16)) * np.linspace(1e-3, 1e3, 61)[:, None]
    out = unit_rows(x, "x", dtype)
    assert out.dtype == dtype and len(_inputs.row_blocks(61, 16)) == 8
    assert np.array_equal(out, normalize_rows(x.astype(dtype)))


def test_bad_rows_in_later_blocks_are_found(small_blocks):
    x = np.random.default_rng(1).standard_normal((40, 16))
    zeros = x.copy()
    zeros[[3, 17, 33]] = 0.0
    with pytest.raises(RascalError, match=r"has 3 all-zero row\(s\) of 40 \(rows 3, 17, 33\)"):
        unit_rows(zeros, "emb")
    bad = zeros.copy()
    bad[35, 2] = np.nan  # a NaN is named before the zero rows of earlier blocks
    with pytest.raises(RascalError, match="holds NaN or infinite values"):
        unit_rows(bad, "emb")
    inf = x.copy()
    inf[39, 0] = np.inf
    with pytest.raises(RascalError, match="holds NaN or infinite values"):
        unit_rows(inf, "emb")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_rows_whose_squares_overflow_or_underflow_are_not_mistaken_for_bad_rows():
    """Finite rows with a non-finite or zero float32 norm are scaled as before, not refused."""
    x = np.ones((3, 4), dtype=np.float32)
    x[1] *= 1e30  # squares overflow: norm inf
    x[2] *= 1e-30  # squares underflow: norm 0
    out = unit_rows(x, "x", np.float32)
    assert np.array_equal(out, normalize_rows(x))


def test_unit_rows_of_unit_rows_is_the_array_itself():
    x = np.random.default_rng(2).standard_normal((30, 8)).astype(np.float32)
    unit = UnitRows(x, "x")
    assert unit_rows(unit, "x", np.float32) is unit.array
    assert _inputs.as_matrix(unit, "x", np.float32) is unit.array
    assert len(unit) == 30 and unit.shape == (30, 8) and unit.dtype == np.float32
    # Another precision is computed from the rows again, as for any array.
    assert np.array_equal(unit_rows(unit, "x", np.float64), normalize_rows(
        unit.array.astype(np.float64)))
    with pytest.raises(RascalError, match="all-zero"):
        UnitRows(np.zeros((3, 4)), "x")


def test_every_metric_reads_unit_rows_as_the_array_they_hold():
    """Handing a metric the rows normalised once gives what the raw rows give (each normalises
    them the same way; handing it the normalised array would normalise again, an ulp off)."""
    rng = np.random.default_rng(3)
    fine = np.repeat(np.arange(12), 15)
    coarse = fine // 4
    x = (rng.standard_normal((12, 10))[fine] + 0.8 * rng.standard_normal((180, 10))).astype(
        np.float32)
    attrs = rng.random((180, 6)) < 0.4
    unit = UnitRows(x, "x")

    def same(a, b):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                same(a[key], b[key])
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b or (a != a and b != b)

    for fn in (lambda e: retrieval_metrics(e, fine),
               lambda e: within_coarse_retrieval(e, coarse, fine),
               lambda e: hierarchy_retention(e, coarse, fine, k=5),
               lambda e: attribute_consistency(e, fine, attrs, k=5),
               lambda e: geodesic_variance(e, fine),
               lambda e: geometry_summary(e, fine, features=x),
               lambda e: rank_stability(x * 1.5 + 0.1, e, fine)):
        same(fn(unit), fn(x))
