"""Scores probe pairs: accuracy with a Wilson confidence interval.

A probe example (`crs_tasks.probe_builders`) holds `inputs`, `targets` (the
correct reply) and `negative_targets`. A model reads them through the
probe's seqio Task (`crs_tasks/probes.py`, `probe_<name>_v001`):
`load_probes(probe_dir)` gives each probe's `ProbeSet`, the Task's examples
(its one reader, `crs_tasks.probe_io.read_probe_jsonl`, and its tokenizer)
untrimmed, with `model_examples()` (the 2N rows to score: correct replies,
then negatives) and `lengths` (the longest of them: nothing is cut, whichever
command scores them); `eval.evaluation.probe_scores` scores them and
`probe_metrics` measures. A text scorer (a baseline), `PairScoreFn`
`score_fn(inputs: list[str], targets: list[str]) -> np.ndarray [N]`, goes
through `score_probe` on the file's examples (`load_probe_examples`).
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
`.../num_pairs`. `probe_metrics` also returns each pair's scores
(`pair_rows`), which `eval.evaluation` writes to `probe_pairs.jsonl` beside
`metrics.json`: paired tests between two runs (`eval.metrics.mcnemar`) need
them.
"""

import contextlib
import dataclasses
import os
import threading
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from absl import logging
import numpy as np
import seqio

from crs_tasks import postprocessors
from crs_tasks import probe_io
# Registers the probe_<name>_v001 Tasks that `load_probes` reads.
from crs_tasks import probes as _probe_tasks  # pylint: disable=unused-import
from eval import metrics as metrics_lib
from train import model_inputs

# (inputs [N], targets [N]) -> log p(targets | inputs) [N].
PairScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]
REQUIRED_FIELDS = ("inputs", "targets", "negative_targets")
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
) -> dict[str, float]:
  """Probe accuracy of a text scorer on probe pairs.

  Args:
    score_fn: `(inputs, targets) -> [N]` log-likelihoods.
    examples: probe pairs (`inputs`, `targets`, `negative_targets` texts).
    name: metric name; defaults to the examples' `probe` field.
    confidence: interval coverage.

  Returns:
    `pair_metrics` of the scores.
  """
  name = name or probe_name(examples)
  if not examples:
    raise ValueError(f"probe {name}: no pairs to score")
  positive, negative = pair_scores(score_fn, examples)
  return pair_metrics(name, positive, negative, confidence=confidence)


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


# ============================ Through the Tasks =============================


@dataclasses.dataclass(frozen=True)
class ProbeSet:
  """One probe's pairs as its seqio Task gives them, untrimmed.

  Attributes:
    name: the probe (`recommendation`, ...).
    examples: the Task's examples as python (`inputs`/`targets` token ids
      with EOS, `inputs_pretokenized`, `negative_targets`, `pair_id`, ...).
    negatives: token ids (with EOS) of each `negative_targets`, by the
      Task's targets vocabulary.
  """

  name: str
  examples: tuple[Mapping[str, Any], ...]
  negatives: tuple[tuple[int, ...], ...]

  def model_examples(self) -> list[dict[str, Any]]:
    """The 2N `{"inputs", "targets"}` rows to score: every pair's correct
    reply, then every pair's negative."""
    return ([{"inputs": ex["inputs"], "targets": ex["targets"]}
             for ex in self.examples] +
            [{"inputs": ex["inputs"], "targets": list(neg)}
             for ex, neg in zip(self.examples, self.negatives)])

  @property
  def lengths(self) -> dict[str, int]:
    """The longest tokenized input and target: nothing is cut."""
    rows = self.model_examples()
    return {"inputs": max(len(r["inputs"]) for r in rows),
            "targets": max(len(r["targets"]) for r in rows)}


def probe_task_name(name: str) -> str:
  """The registered Task of a probe (`crs_tasks/probes.py`)."""
  return f"probe_{name}_v001"


# Held while `$CRS_PROBES_DIR` points elsewhere: two threads loading probes
# from different folders take turns instead of reading each other's.
_PROBES_DIR_LOCK = threading.Lock()


@contextlib.contextmanager
def _probes_dir(probe_dir: str) -> Iterator[None]:
  """Points the `probe_<name>_v001` Tasks at `probe_dir` (they read
  `$CRS_PROBES_DIR` when their dataset is built, in the calling thread),
  then restores it; one thread at a time."""
  env = probe_io.PROBES_DIR_ENV
  with _PROBES_DIR_LOCK:
    old = os.environ.get(env)
    os.environ[env] = os.path.abspath(probe_dir)
    try:
      yield
    finally:
      if old is None:
        del os.environ[env]
      else:
        os.environ[env] = old


def load_probe_set(probe_dir: str, name: str,
                   max_pairs: Optional[int] = None) -> ProbeSet:
  """The first `max_pairs` pairs of `<probe_dir>/<name>.jsonl`, read and
  tokenized by the probe's Task (`probe_<name>_v001`, `validation`).

  Raises:
    FileNotFoundError: no such file.
    ValueError: a bad line (`probe_io.ProbeFileError`, one `error:` line in
      a command) or no pairs.
  """
  task = seqio.get_mixture_or_task(probe_task_name(name))
  with _probes_dir(probe_dir):
    ds = task.get_dataset(sequence_length=None, split="validation",
                          shuffle=False, num_epochs=1)
    if max_pairs is not None:
      ds = ds.take(max_pairs)
    examples = tuple({k: postprocessors.to_python(v) for k, v in ex.items()}
                     for ex in ds.as_numpy_iterator())
  if not examples:
    raise ValueError(f"probe {name}: no pairs to score")
  negatives = model_inputs.tokenize_texts(
      task.output_features["targets"].vocabulary,
      [ex["negative_targets"] for ex in examples], length=1 << 30)
  return ProbeSet(name, examples, tuple(map(tuple, negatives)))


def load_probes(
    probe_dir: str,
    *,
    names: Sequence[str] = probe_io.ALL_PROBE_NAMES,
    max_pairs: Optional[int] = None,
) -> dict[str, ProbeSet]:
  """`load_probe_set` of each probe with a file in `probe_dir`.

  Args:
    probe_dir: folder with `<probe>.jsonl` files (`crs_tasks.build_probes
      --build_dir`). Probes without a file are skipped with a log line.
    names: probes to load.
    max_pairs: only the first `max_pairs` pairs of each probe.

  Returns:
    probe name -> its `ProbeSet`, for `eval.evaluation.evaluate(probes=...)`.
  """
  out = {}
  for name in names:
    path = os.path.join(probe_dir, f"{name}.jsonl")
    if not os.path.exists(path):
      logging.warning("probe %s skipped: %s not found", name, path)
      continue
    out[name] = load_probe_set(probe_dir, name, max_pairs)
  return out


def probe_metrics(
    probe: ProbeSet,
    positive: Sequence[float],
    negative: Sequence[float],
    *,
    confidence: float = 0.95,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
  """`(pair_metrics, pair_rows)` of a probe's pair scores (pure)."""
  return (pair_metrics(probe.name, positive, negative, confidence=confidence),
          pair_rows(probe.name, probe.examples, positive, negative))
