"""The report's generated summary: sentences built only from computed numbers and interval verdicts.

The wording is fixed by the statistics: a difference is "higher" or "lower" only when its 95%
interval excludes 0; otherwise it is reported as not distinguishable from zero, and with one
run on a side as having no interval. Nothing here calls a difference an improvement: which
direction is desirable depends on the metric and on the reader's question.
"""

from __future__ import annotations

from typing import Sequence

from rascal_geom.stats import Difference, Summary


def fmt(x: float, digits: int = 4, sign: bool = False) -> str:
    """A number as the report prints it (``−`` as a true minus sign)."""
    s = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return s.replace("-", "\u2212")


def describe_difference(d: Difference) -> str:
    """``+0.0123 (95% CI +0.0040 to +0.0201, paired t over 3 seeds)`` and the like.

    A difference without an interval is only its value: the reason is stated once for all of
    them (:func:`comparison_sentences`), not repeated after each.
    """
    if not d.has_interval:
        return fmt(d.delta, sign=True)
    how = (f"paired t over {d.n} seeds" if d.method == "paired-t"
           else "Welch t")
    return (f"{fmt(d.delta, sign=True)} ({d.confidence:.0%} CI {fmt(d.low, sign=True)} "
            f"to {fmt(d.high, sign=True)}, {how})")


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def comparison_sentences(group_names: Sequence[str], baseline: int,
                         rows: Sequence[tuple[str, Sequence[Summary | None],
                                              Sequence[Difference | None]]]
                         ) -> list[str]:
    """One paragraph per non-baseline group: which headline differences the intervals support.

    Differences without an interval are listed by value in their group's paragraph, and why they
    have none is said once, in a last paragraph, however many groups and metrics lack one.

    Parameters
    ----------
    group_names : sequence of str
    baseline : int
        Index of the baseline group.
    rows : sequence of (metric label, summaries per group, differences per group)
        ``differences[baseline]`` is ignored; ``None`` marks a metric missing for a group.
    """
    out = []
    any_no_ci = False
    for g, name in enumerate(group_names):
        if g == baseline:
            continue
        higher, lower, unclear, no_ci = [], [], [], []
        for label, _, diffs in rows:
            d = diffs[g]
            if d is None:
                continue
            text = f"{label} {describe_difference(d)}"
            if not d.has_interval:
                no_ci.append(text)
            elif d.distinguishable:
                (higher if d.delta > 0 else lower).append(text)
            else:
                unclear.append(text)
        parts = []
        if higher:
            parts.append(f"{name} is higher than {group_names[baseline]} in {_join(higher)}.")
        if lower:
            parts.append(f"{name} is lower than {group_names[baseline]} in {_join(lower)}.")
        if unclear:
            parts.append("Not distinguishable from zero (the interval contains 0): "
                         f"{_join(unclear)}.")
        if no_ci:
            parts.append(f"{name} \u2212 {group_names[baseline]} without an interval: "
                         f"{_join(no_ci)}.")
            any_no_ci = True
        if parts:
            out.append(" ".join(parts))
    if any_no_ci:
        out.append("Where a difference has no interval, a side has one run (n=1): the spread of "
                   "one number is unknown, so no difference is claimed.")
    return out


def group_sentence(group_names: Sequence[str], counts: Sequence[int], baseline: int) -> str:
    """Which groups are compared, how many seeds each, and which is the baseline."""
    listed = _join([f"{n} (n={c})" for n, c in zip(group_names, counts)])
    if len(group_names) == 1:
        return f"One configuration: {listed}."
    return f"{len(group_names)} configurations, runs differing only in seed grouped: {listed}; " \
           f"baseline {group_names[baseline]}."


def single_group_sentence(name: str, rows: Sequence[tuple[str, Summary]]) -> str:
    """The headline numbers of one group (no comparison)."""
    parts = [f"{label} {fmt(s.mean)}" + (f" \u00b1 {fmt(s.std)} (n={s.n})" if s.n > 1 else "")
             for label, s in rows]
    return f"{name}: {_join(parts)}." if parts else f"{name}: no headline numbers were found."


def weight_sentence(name: str, stats: dict, epoch: int | None, recorded: str) -> str:
    """The weight-distribution numbers of one RASCAL group; ``recorded`` says what the histogram
    holds."""
    at = f"epoch {epoch}" if epoch is not None else "the last logged epoch"
    return (f"At {at}, {stats['share_ge_0.9']:.1%} of {name}'s logged values ({recorded}) are "
            f"\u2265 0.9, {stats['share_ge_0.7']:.1%} are \u2265 0.7 and "
            f"{stats['share_lt_0.3']:.1%} are < 0.3 (binned mean {fmt(stats['mean'], 3)}, std "
            f"{fmt(stats['std'], 3)}).")


def umap_sentence(name: str, trustworthiness: float, n: int) -> str:
    return f"The UMAP of {name} ({n} test points) has trustworthiness {fmt(trustworthiness, 3)}."
