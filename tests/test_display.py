"""Display names, rounding to the spread, and the bold rule, against hand-computed cases."""

import pytest

from rascal_geom.display import best_separated, decimals, display_names, method_name, rounded
from rascal_train.errors import RascalError


@pytest.mark.parametrize(
    "spread, expected",
    [
        (0.034, 2),
        (0.0096, 3),
        (0.1, 1),
        (0.99, 1),
        (2.1, 0),
        (35.0, 0),
        (None, 3),
        (0.0, 3),
        (float("nan"), 3),
    ],
)
def test_decimals_keep_the_first_significant_digit(spread, expected):
    assert decimals(spread) == expected


def test_rounded_text():
    assert rounded(0.71234, 0.0123) == "0.71"
    assert rounded(-0.0456, 0.0031, sign=True) == "\u22120.046"
    assert rounded(0.05, 0.02, sign=True) == "+0.05"
    assert rounded(12.345, 3.0) == "12"
    assert rounded(0.5, None) == "0.500"


def test_method_names_from_config():
    assert method_name({"loss": "ce"}) == "CE"
    assert method_name({"loss": "supcon", "weights": "uniform"}) == "SupCon"
    assert method_name({"loss": "rascal", "weights": "rank_agreement"}) == "RASCAL (rank agreement)"
    assert method_name({"loss": "rascal"}) == "RASCAL (rank agreement)"
    assert method_name({}) is None


def test_display_names_disambiguate_and_override():
    configs = [
        {"loss": "supcon", "temperature": 0.1},
        {"loss": "supcon", "temperature": 0.2},
        {"loss": "rascal", "weights": "uniform"},
        {},
    ]
    names = ["a", "b", "weights=uniform", "mystery"]
    losses = ["supcon", "supcon", "rascal", None]
    assert display_names(names, configs, losses) == [
        "SupCon (temperature=0.1)",
        "SupCon (temperature=0.2)",
        "RASCAL (uniform)",
        "mystery",
    ]
    # By group name, or by a loss only one group has.
    assert display_names(names, configs, losses, {"rascal": "Ours", "a": "SupCon, T=0.1"}) == [
        "SupCon, T=0.1",
        "SupCon (temperature=0.2)",
        "Ours",
        "mystery",
    ]
    with pytest.raises(RascalError, match="names no run group"):
        display_names(names, configs, losses, {"typo": "X"})
    with pytest.raises(RascalError, match="non-empty string"):
        display_names(names, configs, losses, {"a": ""})


def test_bold_only_where_the_interval_separates_the_best():
    # Paired by seed: differences of 0.10 +- 0.01 exclude 0 against both others.
    clear = [{0: 0.50, 1: 0.51, 2: 0.49}, {0: 0.60, 1: 0.62, 2: 0.60}, {0: 0.40, 1: 0.41, 2: 0.39}]
    assert best_separated("linear_top1", clear) == 1
    # Lower is better for ECE: group 2.
    assert best_separated("ece", clear) == 2
    # Best by mean but overlapping the second (differences -0.01, +0.03, +0.01 over seeds).
    close = [{0: 0.60, 1: 0.62, 2: 0.61}, {0: 0.59, 1: 0.65, 2: 0.62}]
    assert best_separated("linear_top1", close) is None
    # One run per group: no interval, no bold; a metric without a direction: no bold.
    assert best_separated("linear_top1", [[0.5], [0.9]]) is None
    assert best_separated("collapse_ratio", clear) is None
    # A group without the number takes no part.
    assert best_separated("knn_top1", [clear[0], [], clear[1]]) == 2
