"""Scores probe pairs: accuracy with a Wilson confidence interval.

A probe example (`crs_tasks.probe_builders`) holds `inputs`, `targets` (the
correct reply) and `negative_targets`. A `PairScoreFn`
`score_fn(inputs: list[str], targets: list[str]) -> np.ndarray [N]` returns
log p(targets | inputs) (a model: `train.inference.PairScorer`, which tokenizes
and batches through the model's feature converter like every other path).
A pair is correct when
log p(targets) >= log p(negative_targets) (ties count as correct, as in the
paper's ">="); chance is 50%.

Accuracy is reported with a Wilson score interval (Wilson 1927) at
`confidence` (default 95%): with n pairs, k correct, p = k / n and z the
normal quantile,

  center = (p + z^2 / (2n)) / (1 + z^2 / n)
  half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

The interval treats pairs as independent draws; pairs sharing a query movie
are correlated, so it is somewhat too narrow for the recommendation and
combination probes. Metric names: `probe/<name>/accuracy`, `.../ci_low`,
`.../ci_high` (all in percent, 0-100, like the other metrics) and
`.../num_pairs`. The probes of `make_probe_fns` also return each pair's
scores under `probe/<name>/pairs` (`pair_rows`), which `eval.evaluation`
writes to `probe_pairs.jsonl` beside `metrics.json`: paired tests between
two runs (`eval.metrics.mcnemar`) need them.
"""

import os
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import numpy as np

from crs_tasks import probe_builders as builders
from crs_tasks import probe_io
from eval import metrics as metrics_lib

# (inputs [N], targets [N]) -> log p(targets | inputs) [N].
PairScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]
# (PairScoreFn) -> metrics: one probe as `eval.evaluation` runs it.
ProbeFn = Callable[[PairScoreFn], dict]
REQUIRED_FIELDS = ("inputs", "targets", "negative_targets")
PAIRS_SUFFIX = "/pairs"  # `probe/<name>/pairs`: the per-pair rows.
# The per-pair rows' file beside metrics.json (`eval.evaluation` writes it,
# `eval.reporting` reads it).
PROBE_PAIRS_FILE = "probe_pairs.jsonl"


def pair_metrics(
    name: str,
    positive: Sequence[float],
    negative: Sequence[float],
    *,
    confidence: float = 0.95,
) -> dict[str, float]:
  """Accuracy and Wilson interval from two aligned score arrays.

  Args:
    name: probe name, used in the metric names.
    positive: log p(correct reply) per pair.
    negative: log p(negative reply) per pair.
    confidence: interval coverage.

  Returns:
    `{"probe/<name>/accuracy": ..., "probe/<name>/ci_low": ...,
    "probe/<name>/ci_high": ..., "probe/<name>/num_pairs": n}`.

  Raises:
    ValueError: on shape mismatch, no pairs or non-finite scores.
  """
  pos = np.asarray(positive, dtype=np.float64).reshape(-1)
  neg = np.asarray(negative, dtype=np.float64).reshape(-1)
  if pos.shape != neg.shape:
    raise ValueError(
        f"probe {name}: {pos.size} positive but {neg.size} negative scores"
    )
  if pos.size == 0:
    raise ValueError(f"probe {name}: no pairs to score")
  bad = np.flatnonzero(~(np.isfinite(pos) & np.isfinite(neg)))
  if bad.size:
    raise ValueError(
        f"probe {name}: {bad.size} non-finite scores, first at pair "
        f"{int(bad[0])}"
    )
  correct = int(np.sum(pos >= neg))
  low, high = metrics_lib.wilson_interval(correct, pos.size, confidence)
  prefix = f"probe/{name}"
  # Percent, like every other metric (`rec/`, `gen/`, `rank/`).
  return {
      f"{prefix}/accuracy": 100.0 * correct / pos.size,
      f"{prefix}/ci_low": 100.0 * low,
      f"{prefix}/ci_high": 100.0 * high,
      f"{prefix}/num_pairs": float(pos.size),
  }


def probe_name(examples: Sequence[Mapping[str, Any]]) -> str:
  """The single `probe` field shared by all examples."""
  names = {ex.get("probe") for ex in examples}
  if len(names) != 1 or None in names:
    raise ValueError(f"examples must share one `probe` name, got {names}")
  return names.pop()


def pair_scores(
    score_fn: PairScoreFn, examples: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
  """Scores the correct and the negative reply of every pair in one call.

  Args:
    score_fn: `(inputs [2N], targets [2N]) -> [2N]` log-likelihoods.
    examples: probe pairs.

  Returns:
    `(positive [N], negative [N])` float64 scores.
  """
  for i, ex in enumerate(examples):
    missing = [f for f in REQUIRED_FIELDS if f not in ex]
    if missing:
      raise ValueError(f"probe example {i}: missing field(s) {missing}")
  inputs = [ex["inputs"] for ex in examples]
  targets = [ex["targets"] for ex in examples]
  negatives = [ex["negative_targets"] for ex in examples]
  scores = np.asarray(
      score_fn(inputs + inputs, targets + negatives), dtype=np.float64
  ).reshape(-1)
  if scores.size != 2 * len(examples):
    raise ValueError(
        f"score_fn returned {scores.size} scores for {2 * len(examples)} "
        "(inputs, targets) pairs"
    )
  return scores[: len(examples)], scores[len(examples) :]


def score_probe(
    score_fn: PairScoreFn,
    examples: Sequence[Mapping[str, Any]],
    *,
    name: Optional[str] = None,
    confidence: float = 0.95,
    with_rows: bool = False,
) -> dict[str, Any]:
  """Probe accuracy of a scorer on probe pairs.

  Args:
    score_fn: `(inputs, targets) -> [N]` log-likelihoods.
    examples: probe pairs (`inputs`, `targets`, `negative_targets`).
    name: metric name; defaults to the examples' `probe` field.
    confidence: interval coverage.
    with_rows: also return the per-pair rows under `probe/<name>/pairs`
      (`pair_rows`).

  Returns:
    `pair_metrics` of the scores (and the rows).
  """
  name = name or probe_name(examples)
  if not examples:
    raise ValueError(f"probe {name}: no pairs to score")
  positive, negative = pair_scores(score_fn, examples)
  out = pair_metrics(name, positive, negative, confidence=confidence)
  if with_rows:
    out[f"probe/{name}{PAIRS_SUFFIX}"] = pair_rows(
        name, examples, positive, negative)
  return out


def split_rows(metrics: Mapping[str, Any]) -> tuple[dict, list]:
  """`(scalar metrics, per-pair rows)` of probe results (`with_rows`)."""
  scalars, rows = {}, []
  for k, v in metrics.items():
    if k.endswith(PAIRS_SUFFIX):
      rows.extend(v)
    else:
      scalars[k] = v
  return scalars, rows


def pair_rows(
    name: str,
    examples: Sequence[Mapping[str, Any]],
    positive: Sequence[float],
    negative: Sequence[float],
) -> list[dict[str, Any]]:
  """One row per pair: `{"probe", "pair_id", "positive", "negative",
  "correct"}` (log-probabilities of the two replies; correct = positive >=
  negative, as `pair_metrics` counts)."""
  return [
      {"probe": name, "pair_id": ex.get("pair_id", str(i)),
       "positive": float(p), "negative": float(n), "correct": bool(p >= n)}
      for i, (ex, p, n) in enumerate(zip(examples, positive, negative))
  ]


def load_probe_examples(path: str) -> list[dict]:
  """Reads a probe JSONL file (`crs_tasks.probe_io`), checking every line.

  A line with bad JSON or bytes, or a missing / non-string `probe` or
  required field, is skipped and reported (one line naming file:line).

  Raises:
    FileNotFoundError: no such file.
    ValueError: (a `UserError`) the file has no valid line.
  """
  return probe_io.read_probe_jsonl(path, required=REQUIRED_FIELDS + ("probe",))


def make_probe_fns(
    probe_dir: str,
    *,
    names: Sequence[str] = probe_io.ALL_PROBE_NAMES,
    max_pairs: Optional[int] = None,
    confidence: float = 0.95,
) -> dict[str, ProbeFn]:
  """Probe callables for `eval.evaluation.evaluate(probe_fns=...)`.

  Args:
    probe_dir: folder with `<probe>.jsonl` files (`crs_tasks.build_probes
      --build_dir`). Probes without a file are skipped with a log line.
    names: probes to load.
    max_pairs: score only the first `max_pairs` pairs of each probe.
    confidence: interval coverage.

  Returns:
    probe name -> `fn(score_fn) -> metrics`, the metrics with the per-pair
    rows under `probe/<name>/pairs` (`pair_rows`).
  """
  fns = {}
  for name in names:
    path = os.path.join(probe_dir, f"{name}.jsonl")
    if not os.path.exists(path):
      logging.warning("probe %s skipped: %s not found", name, path)
      continue
    examples = load_probe_examples(path)[:max_pairs]

    def fn(score_fn, examples=examples, name=name):
      return score_probe(score_fn, examples, name=name,
                         confidence=confidence, with_rows=True)

    fns[name] = fn
  return fns
