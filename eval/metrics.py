"""Measurements of ranked lists and of runs: pure functions.

`rank/` (and `rank_dedup/`, from `eval/ranking.py`): recall@k of ranked
lists (0-100) with Wilson intervals; `mcnemar`: exact paired test of two
runs. The generation metrics the ReDial Tasks register (`rec/`, `gen/`)
live beside the Tasks, in `crs_tasks/metrics.py`.
"""

import math
import statistics
from typing import Sequence

import numpy as np

from crs_tasks import metrics as task_metrics


# ================================== rank/ ===================================


def wilson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
  """Wilson score interval of a binomial proportion.

  Args:
    successes: number of successes k, 0 <= k <= n.
    n: number of trials (> 0).
    confidence: two-sided coverage, in (0, 1).

  Returns:
    `(low, high)`; e.g. k = 8, n = 10 at 95% gives about (0.490, 0.943).
  """
  if n <= 0:
    raise ValueError(f"n must be > 0, got {n}")
  if not 0 <= successes <= n:
    raise ValueError(f"successes must be in [0, {n}], got {successes}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
  p = successes / n
  denom = 1 + z * z / n
  center = (p + z * z / (2 * n)) / denom
  half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  # The bounds are exactly 0 at k = 0 and 1 at k = n (avoid round-off).
  low = 0.0 if successes == 0 else max(0.0, center - half)
  high = 1.0 if successes == n else min(1.0, center + half)
  return low, high


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> dict[str, float]:
  """Exact McNemar test of two classifiers on the same items (paired).

  Only the discordant items count: b = first right and second wrong, c =
  first wrong and second right. Under the null (equal accuracy) b ~
  Binomial(b + c, 1/2); the two-sided exact p-value is
  `min(1, 2 * P(X <= min(b, c)))` (1 when b + c = 0).

  Args:
    first: per-item correctness of the first run.
    second: per-item correctness of the second run, same items, same order.

  Returns:
    `{"b", "c", "n", "p_value"}`; e.g. b = 1, c = 5 gives
    p = 2 * (1 + 6) / 64 = 0.21875.
  """
  if len(first) != len(second):
    raise ValueError(
        f"paired runs differ in length: {len(first)} vs {len(second)}")
  b = sum(1 for x, y in zip(first, second) if x and not y)
  c = sum(1 for x, y in zip(first, second) if y and not x)
  n = b + c
  tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0 ** n
  return {"b": float(b), "c": float(c), "n": float(len(first)),
          "p_value": min(1.0, 2.0 * tail)}


def recall_from_ranks(
    ranks: Sequence[float],
    ks: Sequence[int] = (1, 10, 50),
    prefix: str = "rank",
    confidence: float = 0.95,
) -> dict[str, float]:
  """`{prefix}/recall@{k}` (0-100) and `{prefix}/num_samples` from 1-based
  label ranks (`inf` = miss), with the Wilson interval of each recall as
  `{prefix}/recall@{k}/ci_low` and `.../ci_high` (0-100, at `confidence`).

  The interval treats samples as independent; the samples of one turn
  share a context, so it is somewhat too narrow. No interval without
  samples.
  """
  ranks = np.asarray(ranks, dtype=np.float64)
  out = {}
  for k in ks:
    hits = int(np.sum(ranks <= k))
    out[f"{prefix}/recall@{k}"] = (
        100.0 * hits / ranks.size if ranks.size else 0.0)
    if ranks.size:
      low, high = wilson_interval(hits, ranks.size, confidence)
      out[f"{prefix}/recall@{k}/ci_low"] = 100.0 * low
      out[f"{prefix}/recall@{k}/ci_high"] = 100.0 * high
  out[f"{prefix}/num_samples"] = float(ranks.size)
  return out


def ranking_recall(
    targets: Sequence[Sequence[str]],
    predictions: Sequence[task_metrics.Prediction],
    ks: Sequence[int] = (1, 10, 50),
    prefix: str = "rank",
) -> dict[str, float]:
  """Recall@k of ranked title lists, one sample per gold title.

  `[["Heat (1995)"], ["Alien (1979)"]]` vs `["Heat (1995)", "Up (2009)"]`
  gives `rank/recall@1` = 50.0.

  Args:
    targets: gold titles per example.
    predictions: per example, ranked titles (best first) or one title.
    ks: cut-offs.
    prefix: metric namespace (`rank`, `rank_dedup`).

  Returns:
    See `recall_from_ranks`.
  """
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} "
                     "predictions")
  ranks = []
  for gold, ranked in zip(targets, predictions):
    if isinstance(ranked, (str, bytes)):
      ranked = [ranked]
    position = {}
    for i, title in enumerate(ranked):
      position.setdefault(task_metrics.normalize_title(title), i + 1)
    if isinstance(gold, (str, bytes)):
      gold = [gold]
    ranks += [position.get(task_metrics.normalize_title(g), math.inf)
              for g in gold]
  return recall_from_ranks(ranks, ks, prefix)
