import numpy as np
import pytest
from scipy.special import softmax

from rascal_geom.calibration_figure import reliability_figure
from rascal_geom.figures import export_figure
from rascal_geom.metrics import calibration
from rascal_train.errors import RascalError


def _probs(conf, predicted, c):
    """Rows whose largest probability ``conf`` sits on ``predicted``, the rest spread evenly."""
    p = np.repeat(((1 - conf) / (c - 1))[:, None], c, axis=1)
    p[np.arange(len(conf)), predicted] = conf
    return p


def test_perfectly_calibrated_predictions_have_ece_near_zero():
    rng = np.random.default_rng(0)
    n, c = 200_000, 10
    conf = rng.uniform(0.2, 1.0, n)
    predicted = rng.integers(0, c, n)
    right = rng.random(n) < conf  # correct with probability equal to the confidence
    labels = np.where(right, predicted, (predicted + rng.integers(1, c, n)) % c)
    out = calibration(_probs(conf, predicted, c), labels)
    assert out["ece"] < 0.005
    assert out["accuracy"] == pytest.approx(out["confidence"], abs=0.005)


def test_known_miscalibration_gives_the_analytic_ece():
    # 100 predictions at confidence 0.9 of which 60 right; 300 at 0.55 of which 240 right.
    conf = np.r_[np.full(100, 0.9), np.full(300, 0.55)]
    predicted = np.zeros(400, dtype=int)
    labels = np.r_[np.zeros(60), np.ones(40), np.zeros(240), np.ones(60)].astype(int)
    out = calibration(_probs(conf, predicted, 3), labels)
    assert out["ece"] == pytest.approx((100 * 0.3 + 300 * 0.25) / 400, abs=1e-12)
    assert out["mce"] == pytest.approx(0.3, abs=1e-12)
    assert out["bins"]["count"].sum() == 400 and np.count_nonzero(out["bins"]["count"]) == 2
    # (13/15, 14/15], (8/15, 9/15]
    assert out["bins"]["count"][13] == 100 and out["bins"]["count"][8] == 300


def test_bins_against_explicit_loop_and_from_logits():
    rng = np.random.default_rng(1)
    logits = 3 * rng.standard_normal((500, 5))
    labels = rng.integers(0, 5, 500)
    p = softmax(logits, axis=1)
    out = calibration(p, labels, n_bins=7)
    conf, right = p.max(1), p.argmax(1) == labels
    ece = 0.0
    for m in range(7):
        inside = (conf > m / 7) & (conf <= (m + 1) / 7)
        assert out["bins"]["count"][m] == inside.sum()
        if inside.any():
            assert out["bins"]["accuracy"][m] == pytest.approx(right[inside].mean(), abs=1e-12)
            assert out["bins"]["confidence"][m] == pytest.approx(conf[inside].mean(), abs=1e-12)
            ece += inside.sum() / 500 * abs(right[inside].mean() - conf[inside].mean())
        else:
            assert np.isnan(out["bins"]["accuracy"][m])
    assert out["ece"] == pytest.approx(ece, abs=1e-12)
    assert calibration(logits, labels, from_logits=True)["ece"] == pytest.approx(
        calibration(softmax(logits, axis=1), labels)["ece"], abs=1e-12)


def test_a_confidence_on_a_bin_edge_belongs_to_the_lower_bin():
    out = calibration(np.array([[0.6, 0.4], [0.5, 0.5]]), np.array([0, 1]), n_bins=10)
    # 0.6 in (0.5, 0.6], 0.5 in (0.4, 0.5]
    assert out["bins"]["count"][5] == 1 and out["bins"]["count"][4] == 1


def test_calibration_input_errors():
    with pytest.raises(RascalError, match="from_logits"):
        calibration(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(RascalError, match="labels up to 3"):
        calibration(np.array([[0.5, 0.5]]), np.array([3]))
    with pytest.raises(RascalError, match="'n_bins'"):
        calibration(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0)


def test_reliability_figure_renders():
    rng = np.random.default_rng(2)
    out = calibration(rng.standard_normal((300, 4)), rng.integers(0, 4, 300), from_logits=True)
    svg = export_figure(reliability_figure(out, title="probe $x$"))
    assert svg.startswith("<svg") and "ECE" in svg and "share of predictions" in svg
