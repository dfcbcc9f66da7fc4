"""How a paper prints a comparison: method names, values rounded to their spread, the best in bold.

- :func:`display_names`: ``CE``, ``SupCon``, ``RASCAL (rank agreement)`` from each group's loss and
  weight source, with the settings that still tell two groups apart added in parentheses, and
  any name overridden by a ``{group or loss: name}`` mapping (a sweep file's ``display_names:``).
- :func:`decimals` / :func:`rounded`: a value rounded to the first significant digit of its
  spread (the half-width of its interval, else its std), as the measurement supports.
- :func:`best_separated`: the best group of a row, only when its difference from every other
  group has an interval that excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rascal_geom.sentences import fmt
from rascal_geom.stats import difference_interval
from rascal_train.errors import RascalError

_LOSS_NAMES = {"ce": "CE", "supcon": "SupCon", "simclr": "SimCLR", "rascal": "RASCAL"}
#: Metrics where a larger value is better; ``LOWER_IS_BETTER`` the reverse. Others get no bold.
HIGHER_IS_BETTER = frozenset(
    {
        "linear_top1",
        "knn_top1",
        "retention",
        "attribute_lift",
        "rank_stability",
        "precision_at_1",
        "r_precision",
        "map_at_r",
        "recall_at_1",
        "recall_at_2",
        "recall_at_4",
        "recall_at_8",
        "within_map_at_r",
        "nc4_agreement",
    }
)
LOWER_IS_BETTER = frozenset({"ece"})
#: Decimals of a value with no spread to round to (one run, no interval).
DEFAULT_DECIMALS = 3


def method_name(config: Mapping) -> str | None:
    """``CE``, ``SupCon``, ``RASCAL (rank agreement)`` ...; ``None`` when the loss is unknown."""
    loss = config.get("loss")
    if loss not in _LOSS_NAMES:
        return None
    name = _LOSS_NAMES[loss]
    if loss == "rascal":
        name += f" ({str(config.get('weights') or 'rank_agreement').replace('_', ' ')})"
    return name


def display_names(
    names: Sequence[str],
    configs: Sequence[Mapping],
    losses: Sequence[str | None],
    overrides: Mapping[str, str] | None = None,
) -> list[str]:
    """Names to print for run groups, in their order.

    Parameters
    ----------
    names : sequence of str
        The groups' own names (run names without the seed suffix).
    configs : sequence of mapping
        Each group's shared configuration.
    losses : sequence of str or None
        Each group's loss (an override may name a loss when one group has it).
    overrides : mapping of str to str, optional
        ``{group name or loss: display name}``.

    Returns
    -------
    list of str
        Distinct names: where two method names coincide, the settings that differ between those
        groups are added (``SupCon (temperature=0.2)``); the group's own name where none do.
    """
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if not isinstance(value, str) or not value.strip():
            raise RascalError(
                f"Display name for {key!r} must be a non-empty string; got {value!r}."
            )
    bases = [method_name(c) or n for n, c in zip(names, configs)]
    out = list(bases)
    for i, base in enumerate(bases):
        twins = [j for j, o in enumerate(bases) if o == base]
        if len(twins) > 1:
            keys = sorted(
                {
                    k
                    for j in twins
                    for k in configs[j]
                    if len({str(configs[t].get(k)) for t in twins}) > 1
                }
                - {"loss", "weights"}
            )
            extra = ", ".join(f"{k}={configs[i].get(k)}" for k in keys)
            out[i] = f"{base} ({extra})" if extra else names[i]
    for i, (name, loss) in enumerate(zip(names, losses)):
        hit = overrides.get(name) or (
            overrides.get(loss) if sum(x == loss for x in losses) == 1 else None
        )
        out[i] = hit or out[i]
    unknown = set(overrides) - set(names) - {x for x in losses if x}
    if unknown:
        raise RascalError(
            f"Display name given for {min(unknown)!r}, which names no run group or loss; "
            f"choose among {', '.join(names)}."
        )
    return out


def decimals(spread: float | None) -> int:
    """Decimals that keep the first significant digit of ``spread`` (``0.034`` -> 2, ``2.1`` -> 0);
    :data:`DEFAULT_DECIMALS` where there is no finite positive spread."""
    if spread is None or not math.isfinite(spread) or spread <= 0:
        return DEFAULT_DECIMALS
    return max(0, -math.floor(math.log10(spread)))


def rounded(value: float, spread: float | None, sign: bool = False) -> str:
    """``value`` rounded to :func:`decimals` of ``spread`` (a true minus sign,
    ``+`` with ``sign``)."""
    return fmt(value, decimals(spread), sign=sign)


def best_separated(
    metric: str, values: Sequence[Sequence[float] | Mapping[int, float]]
) -> int | None:
    """The group with the best mean, if its difference from each other group excludes 0.

    Parameters
    ----------
    metric : str
        The row's metric (its direction: :data:`HIGHER_IS_BETTER`, :data:`LOWER_IS_BETTER`).
    values : sequence of (sequence of float, or {seed: float})
        Each group's values; seed-keyed values give paired intervals, as the difference columns.

    Returns
    -------
    int or None
        ``None`` for a metric without a direction, fewer than two groups with values, or an
        interval (95%, :func:`~rascal_geom.stats.difference_interval`) that contains 0 or cannot
        be computed (a side with one run).
    """
    sign = 1 if metric in HIGHER_IS_BETTER else -1 if metric in LOWER_IS_BETTER else 0
    present = [i for i, v in enumerate(values) if len(v)]
    if not sign or len(present) < 2:
        return None
    means = {i: sum(_vals(values[i])) / len(values[i]) for i in present}
    best = max(present, key=lambda i: sign * means[i])
    for other in present:
        if other != best:
            d = difference_interval(values[best], values[other])
            separated = d.has_interval and (d.low > 0 if sign > 0 else d.high < 0)
            if not separated:
                return None
    return best


def _vals(v) -> list[float]:
    return list(v.values()) if isinstance(v, Mapping) else list(v)
