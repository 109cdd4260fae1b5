"""Evaluates one checkpoint: generation metrics, ranking protocols, probes.

`evaluate` is the library function behind `eval/main.py`. For every seqio
task (mixtures are expanded into their tasks) it

1. reads the first `num_examples` examples of `split` in order
   (`train.model_inputs.task_examples`: the Task's own tokens, metadata
   included);
2. decodes the targets with the model (`train.inference.generate`, with a tqdm
   bar), applies
   the task's `postprocess_fn` and its `predict_metric_fns` (and
   `score_metric_fns` on `model.score_batch`), as `seqio.Evaluator` does,
   plus `redial_metric_fns` (default `REDIAL_METRIC_FNS`: end-to-end
   recall, BLEU, BLEU with titles masked, distinct-n) on ReDial tasks;
3. runs each ranking protocol, `fn(scorer, examples) -> dict`, on tasks
   whose examples carry `target_movies` (ReDial), with
   `scorer(examples, candidates) -> [B, C]` the scores of a
   `train.inference.CandidateScorer` (`model.score_candidates` on the same
   encoder rows generation used; `eval.ranking.make_protocols` gives the
   ReDial protocols), computed once for all protocols (`run_ranking`);

then runs each probe, `fn(pair_score_fn) -> dict`, with a
`train.inference.PairScorer` (`model.score_batch`). It writes
`output_dir/metrics.json`, `output_dir/predictions.jsonl` and TensorBoard
scalars (`summary_dir`, default `output_dir`), and prints the path of
`metrics.json`.

With several processes (`train.distributed`; `eval.main --multiprocess` or
`--coordinator_address ...`) the model calls of all three (the generation
examples, the ranked contexts, the probe pairs) are split across the
processes in whole batches and the results gathered, so the metrics and
predictions are those of one process; process 0 writes the files.

Metric names are those the metric functions return (`rec/recall@1`,
`gen/bleu`, ...); when several tasks are evaluated, task metrics are prefixed
with the task name (`crs_redial_v002/rec/recall@1`). Probe metrics keep their
`probe/<name>/...` names. To add a protocol, pass another callable; nothing
here needs to change.
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from absl import logging
import jax
import numpy as np
import seqio
import tensorflow as tf

from crs_tasks import metrics as metrics_lib
from eval import ranking
from eval.probes import probe_lib
from train import distributed
from train import infer
from train import inference
from train import model_inputs

Array = Any  # jax.Array or np.ndarray.
PyTree = Any
Example = dict[str, Any]

METADATA_KEY = "target_movies"  # Examples with it are ReDial examples.
MetricFn = Callable[[Sequence[Any], Sequence[Any]], Mapping[str, float]]


class Model(Protocol):
  """What `evaluate` needs of `train.models.EncoderDecoderModel` (and its
  `input_vocabulary`, `output_vocabulary`)."""

  def predict_batch(self, params: PyTree, batch: Mapping[str, Array],
                    **kwargs) -> Array:
    ...

  def score_batch(self, params: PyTree, batch: Mapping[str, Array]) -> Array:
    ...

  def score_candidates(self, params: PyTree, encoder_input_tokens: Array,
                       candidate_tokens: Array) -> Array:
    ...


# ================================= Data =====================================


def expand_tasks(names: Sequence[str]) -> list[seqio.Task]:
  """Registered tasks for task or mixture names, without duplicates.

  Args:
    names: seqio task or mixture names.

  Returns:
    The tasks, mixtures replaced by their sub-tasks, in order.

  Raises:
    ValueError: a name is not registered (lists the close names).
  """
  tasks = []
  for name in names:
    try:
      found = seqio.get_mixture_or_task(name)
    except ValueError as e:
      known = sorted(seqio.TaskRegistry.names()) + sorted(
          seqio.MixtureRegistry.names())
      close = [k for k in known if name.split("_v")[0] in k][:10]
      raise ValueError(f"unknown task or mixture {name!r}; similar: {close}"
                      ) from e
    subtasks = found.tasks if isinstance(found, seqio.Mixture) else [found]
    for task in subtasks:
      if task.name not in [t.name for t in tasks]:
        tasks.append(task)
  return tasks


# ================================ Metrics ===================================


def task_metrics(
    task: seqio.Task,
    examples: Sequence[Example],
    predictions: Sequence[str],
    scores: Optional[Sequence[float]] = None,
    extra_metric_fns: Sequence[MetricFn] = (),
) -> tuple[dict[str, float], list[Any]]:
  """Applies the task's postprocessor and metric functions, seqio-style.

  Args:
    task: the seqio task.
    examples: its examples (with `targets_pretokenized`).
    predictions: decoded model outputs, one per example.
    scores: target log-likelihoods for `score_metric_fns`, if any.
    extra_metric_fns: more `(targets, predictions) -> dict` functions.

  Returns:
    The merged metrics and the postprocessed predictions.
  """
  targets = [task.postprocess_fn(ex["targets_pretokenized"], example=ex,
                                 is_target=True) for ex in examples]
  processed = [task.postprocess_fn(p, example=ex, is_target=False)
               for p, ex in zip(predictions, examples)]
  metrics = {}
  # The ReDial tasks register REDIAL_METRIC_FNS themselves: run each once.
  fns = list(task.predict_metric_fns)
  fns += [fn for fn in extra_metric_fns if fn not in fns]
  for fn in fns:
    metrics.update(fn(targets, processed))
  if scores is not None:
    for fn in task.score_metric_fns:
      metrics.update(fn(targets, list(scores)))
  return metrics, processed


def _scalar(name: str, value: Any) -> float:
  if isinstance(value, seqio.metrics.Scalar):
    value = value.value
  try:
    return float(value)
  except (TypeError, ValueError):
    raise ValueError(f"metric {name!r} is not a scalar: {value!r}") from None


def write_outputs(
    *,
    output_dir: str,
    summary_dir: Optional[str],
    step: int,
    metrics: Mapping[str, float],
    predictions: Sequence[Mapping[str, Any]],
    info: Mapping[str, Any],
) -> None:
  """Writes `metrics.json`, `predictions.jsonl` and TensorBoard scalars,
  and prints the path of `metrics.json`.

  Args:
    output_dir: created if needed.
    summary_dir: TensorBoard log dir; `output_dir` when None.
    step: checkpoint step (the TensorBoard step).
    metrics: flat name -> float.
    predictions: one JSON object per example.
    info: other fields of `metrics.json` (tasks, split, decoding, timing).
  """
  os.makedirs(output_dir, exist_ok=True)
  infer.write_jsonl(predictions,
                    os.path.join(output_dir, "predictions.jsonl"))
  path = os.path.join(output_dir, "metrics.json")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump({"step": step, **info, "metrics": dict(metrics)}, f, indent=2,
              sort_keys=False)
  os.replace(path + ".tmp", path)
  writer = tf.summary.create_file_writer(summary_dir or output_dir)
  with writer.as_default():
    for name, value in metrics.items():
      tf.summary.scalar(name, value, step=step)
    for name, value in info.get("timing", {}).items():
      tf.summary.scalar(f"timing/{name}", value, step=step)
  writer.flush()
  writer.close()
  logging.info("wrote %s", path)
  print(f"metrics: {path}", flush=True)


# =========================== Across processes ===============================
#
# Every process runs `evaluate` on all the examples but makes only its part
# of the model calls: whole batches (`process_batches`), contiguous, so each
# batch a process computes holds the same rows, in the same shape, as the
# 1-process run's batch, and gives the same numbers. The results are
# gathered in order (`distributed.allgather_objects`), so every process
# computes the metrics from the same values. With one process these are the
# single-process calls.


def process_batches(num_items: int, batch_size: int,
                    process_index: Optional[int] = None,
                    process_count: Optional[int] = None) -> slice:
  """This process's items of `num_items`: whole batches of `batch_size`.

  `process_batches(10, 4)` on process 0 of 2 is `slice(0, 8)` (batches 0
  and 1), on process 1 `slice(8, 10)`. The process defaults to JAX's.
  """
  batches = distributed.process_slice(-(-num_items // batch_size),
                                      process_index, process_count)
  return slice(min(batches.start * batch_size, num_items),
               min(batches.stop * batch_size, num_items))


def _gather(part: Sequence[Any]) -> list[Any]:
  """Every process's `part` (a list), concatenated in process order."""
  return [x for p in distributed.allgather_objects(list(part)) for x in p]


def _gather_rows(part: np.ndarray) -> np.ndarray:
  """Every process's rows of an array, concatenated in process order."""
  return np.concatenate(distributed.allgather_objects(np.asarray(part)))


def generate_and_score(
    model: Model,
    params: PyTree,
    examples: Sequence[Example],
    *,
    task_feature_lengths: Mapping[str, int],
    decode: inference.DecodeConfig,
    batch_size: int,
    score_targets: bool = True,
    desc: str = "generate",
) -> tuple[list[str], Optional[np.ndarray]]:
  """Predictions (`inference.generate`) and target log-likelihoods
  (`inference.score_targets`, float32 [N], or None) of all `examples`, each
  process decoding its `process_batches`."""
  part = process_batches(len(examples), batch_size)
  mine = examples[part]
  predictions = inference.generate(
      model, params, mine, task_feature_lengths=task_feature_lengths,
      decode=decode, batch_size=batch_size, desc=desc,
      progress=distributed.is_primary(), first_batch=part.start // batch_size)
  scores = None
  if score_targets:
    scores = _gather_rows(inference.score_targets(
        model, params, mine, task_feature_lengths=task_feature_lengths,
        batch_size=batch_size))
  return _gather(predictions), scores


class ShardedPairScorer:
  """A `probe_lib.PairScoreFn` whose pairs are split across processes.

  `scorer(inputs, targets) -> [N]`: each process scores its
  `process_batches` of the pairs with `self.scorer` (an
  `inference.PairScorer`), and every process gets all N scores.
  """

  def __init__(self, scorer: inference.PairScorer):
    self.scorer = scorer

  def __call__(self, inputs: Sequence[str],
               targets: Sequence[str]) -> np.ndarray:
    part = process_batches(len(inputs), self.scorer.batch_size)
    scores = self.scorer(list(inputs)[part], list(targets)[part])
    return _gather_rows(scores)


class RecordingScorer:
  """A `ranking.CandidateScoreFn` that scores 0 and records its calls, to
  list the rows a protocol ranks (`calls`: `(examples, candidates)`)."""

  def __init__(self):
    self.calls: list[tuple[list[Example], tuple[str, ...]]] = []

  def __call__(self, examples: Sequence[Example],
               candidates: Sequence[str]) -> np.ndarray:
    self.calls.append((list(examples), tuple(candidates)))
    return np.zeros((len(examples), len(candidates)), np.float32)


class ShardedCandidateScorer:
  """A `ranking.CandidateScoreFn` that looks up scores computed beforehand.

  `prefill(calls)` scores every distinct encoder row of the calls once, in
  batches of `scorer.batch_size` split across processes (`process_batches`),
  and gathers them; then `scorer(examples, candidates)` returns the stored
  `[B, C]` scores of those calls. `scorer` is an `inference.CandidateScorer`
  (its `encoder_rows` are the keys).
  """

  def __init__(self, scorer: inference.CandidateScorer):
    self.scorer = scorer
    self.tables: dict[tuple[str, ...], dict[bytes, np.ndarray]] = {}

  def prefill(self, calls: Sequence[tuple[Sequence[Example],
                                          Sequence[str]]]) -> None:
    """Scores the rows of `calls` (a collective: every process calls it)."""
    todo: dict[tuple[str, ...], dict[bytes, Example]] = {}
    for examples, candidates in calls:
      candidates = tuple(candidates)
      table = self.tables.setdefault(candidates, {})
      rows = todo.setdefault(candidates, {})
      for ex, key in zip(examples, self._keys(examples)):
        if key not in table:
          rows.setdefault(key, ex)
    for candidates, rows in todo.items():
      part = process_batches(len(rows), self.scorer.batch_size)
      scores = self.scorer(list(rows.values())[part], candidates)
      self.tables[candidates].update(zip(rows, _gather_rows(scores)))

  def _keys(self, examples: Sequence[Example]) -> list[bytes]:
    if not examples:
      return []
    return [row.tobytes() for row in self.scorer.encoder_rows(examples)]

  def __call__(self, examples: Sequence[Example],
               candidates: Sequence[str]) -> np.ndarray:
    keys = self._keys(examples)
    if not keys:
      return np.zeros((0, len(candidates)), np.float32)
    table = self.tables.get(tuple(candidates), {})
    try:
      return np.stack([table[k] for k in keys])
    except KeyError:
      raise RuntimeError(
          "a ranking protocol asked for scores its dry run did not (the rows "
          "a protocol ranks must not depend on the scores)") from None


def run_ranking(
    scorer: inference.CandidateScorer,
    ranking_fns: Mapping[str, ranking.RankingFn],
    examples: Sequence[Example],
    *,
    timing: dict[str, float],
    timing_prefix: str = "",
) -> dict[str, Any]:
  """Runs the ranking protocols on `examples`, their scores computed once.

  A dry run of each protocol on a `RecordingScorer` lists the rows it
  ranks; `ShardedCandidateScorer.prefill` scores them (across processes);
  then each protocol runs on those scores.

  Args:
    scorer: scores the rows.
    ranking_fns: protocol name -> `fn(scorer, examples) -> metrics`.
    examples: the examples to rank.
    timing: gets `<prefix>ranking_scores_seconds` and
      `<prefix><name>_seconds`.
    timing_prefix: prefix of the timing keys.

  Returns:
    The protocols' metrics, merged.
  """
  recorder = RecordingScorer()
  for fn in ranking_fns.values():
    fn(recorder, examples)
  start = time.time()
  scorer = ShardedCandidateScorer(scorer)
  scorer.prefill(recorder.calls)
  timing[f"{timing_prefix}ranking_scores_seconds"] = time.time() - start
  out = {}
  for name, fn in ranking_fns.items():
    start = time.time()
    out.update(fn(scorer, examples))
    timing[f"{timing_prefix}{name}_seconds"] = time.time() - start
  return out


def run_probes(pair_scorer: ShardedPairScorer,
               probe_fns: Mapping[str, probe_lib.ProbeFn], *,
               timing: dict[str, float],
               pair_rows: Optional[list] = None) -> dict[str, float]:
  """Runs each probe, `fn(pair_scorer) -> metrics` (timing:
  `probe_<name>_seconds`), and returns their metrics, merged. Per-pair rows
  (`probe/<name>/pairs`, `probe_lib.pair_rows`) go to `pair_rows`."""
  metrics = {}
  for name, fn in probe_fns.items():
    start = time.time()
    pair_scorer.scorer.desc = f"probe {name}"
    scalars, rows = probe_lib.split_rows(fn(pair_scorer))
    metrics.update({k: _scalar(k, v) for k, v in scalars.items()})
    if pair_rows is not None:
      pair_rows.extend(rows)
    timing[f"probe_{name}_seconds"] = time.time() - start
  return metrics


def evaluate(
    *,
    model: Model,
    params: PyTree,
    vocabulary: seqio.Vocabulary,
    tasks: Sequence[str],
    output_dir: str,
    step: int = 0,
    split: str = "test",
    num_examples: Optional[int] = None,
    decode: inference.DecodeConfig = inference.DecodeConfig(),
    inputs_length: int = 512,
    targets_length: int = 64,
    batch_size: int = 16,
    redial_metric_fns: Sequence[MetricFn] = metrics_lib.REDIAL_METRIC_FNS,
    ranking_fns: Optional[Mapping[str, ranking.RankingFn]] = None,
    ranking_examples: Optional[int] = None,
    probe_fns: Optional[Mapping[str, probe_lib.ProbeFn]] = None,
    score_targets: bool = True,
    summary_dir: Optional[str] = None,
) -> dict[str, float]:
  """Evaluates a model on seqio tasks, ranking protocols and probes.

  With several processes every process calls it with the same arguments
  and gets the 1-process metrics ("Across processes" above); process 0
  writes the files.

  Args:
    model: `train.models.EncoderDecoderModel` (or anything with the same
      `predict_batch`, `score_batch` and `score_candidates`).
    params: model parameters.
    vocabulary: the output vocabulary.
    tasks: seqio task or mixture names.
    output_dir: where `metrics.json` and `predictions.jsonl` go.
    step: checkpoint step, recorded and used as the TensorBoard step.
    split: dataset split.
    num_examples: examples per task; all when None.
    decode: decoding settings.
    inputs_length: encoder length (inputs are trimmed).
    targets_length: decoder length for targets and scoring.
    batch_size: examples per model call.
    redial_metric_fns: `(targets, predictions) -> metrics` functions run on
      ReDial tasks (examples with `target_movies`), after `postprocess_fn`.
    ranking_fns: protocol name -> `fn(scorer, examples) -> metrics`, run on
      the same tasks (`ranking.make_protocols`) with the scores of a
      `train.inference.CandidateScorer` (the encoder rows generation used).
    ranking_examples: rank over the first this many examples only (ranking
      is costly); all when None.
    probe_fns: probe name -> `fn(pair_score_fn) -> metrics`, called with a
      `train.inference.PairScorer`.
    score_targets: also compute target log-likelihoods (`gen/target_logprob`
      and the tasks' `score_metric_fns`).
    summary_dir: TensorBoard dir; `output_dir` when None.

  Returns:
    The flat metrics written to `metrics.json`.
  """
  lengths = {"inputs": inputs_length, "targets": targets_length}
  task_list = expand_tasks(tasks)
  metrics, rows, timing, counts = {}, [], {}, {}
  for task in task_list:
    prefix = f"{task.name}/" if len(task_list) > 1 else ""
    start = time.time()
    examples = model_inputs.task_examples(task, split=split,
                                   task_feature_lengths=lengths,
                                   num_examples=num_examples)
    if not examples:
      raise ValueError(f"task {task.name!r} split {split!r} has no examples")
    counts[task.name] = len(examples)
    predictions, scores = generate_and_score(
        model, params, examples, task_feature_lengths=lengths, decode=decode,
        batch_size=batch_size, score_targets=score_targets,
        desc=f"generate {task.name}")
    timing[f"{task.name}/predict_seconds"] = time.time() - start
    if scores is not None:
      metrics[prefix + "gen/target_logprob"] = float(np.mean(scores))
    is_redial = METADATA_KEY in examples[0]
    task_result, processed = task_metrics(
        task, examples, predictions, scores,
        extra_metric_fns=redial_metric_fns if is_redial else ())
    if is_redial and ranking_fns:
      task_result.update(run_ranking(inference.CandidateScorer(
          model, params, task_feature_lengths=lengths, batch_size=batch_size),
          ranking_fns, examples[:ranking_examples], timing=timing,
          timing_prefix=f"{task.name}/"))
    metrics.update({prefix + k: _scalar(k, v) for k, v in task_result.items()})
    rows += prediction_rows(task.name, examples, predictions, processed,
                            scores)
  pairs = []
  if probe_fns:
    metrics.update(run_probes(ShardedPairScorer(inference.PairScorer(
        model, params, task_feature_lengths=lengths, batch_size=batch_size,
        progress=distributed.is_primary())), probe_fns, timing=timing,
                              pair_rows=pairs))
  if distributed.is_primary():  # The files exist once.
    if pairs:
      infer.write_jsonl(
          pairs, os.path.join(output_dir, probe_lib.PROBE_PAIRS_FILE))
    info = {"tasks": [t.name for t in task_list], "split": split,
            "num_examples": counts, "decoding": dataclasses.asdict(decode),
            "timing": timing, "process_count": jax.process_count()}
    write_outputs(output_dir=output_dir, summary_dir=summary_dir, step=step,
                  metrics=metrics, predictions=rows, info=info)
  return metrics


def prediction_rows(
    task_name: str,
    examples: Sequence[Example],
    predictions: Sequence[str],
    processed: Sequence[Any],
    scores: Optional[Sequence[float]],
) -> list[dict[str, Any]]:
  """The `predictions.jsonl` rows of one task: `infer.prediction_row`, plus
  `task`, `index`, the postprocessed prediction (when it differs) and the
  target log-likelihood."""
  rows = []
  for i, (ex, pred, proc) in enumerate(zip(examples, predictions,
                                           processed)):
    row = {"task": task_name, "index": i, **infer.prediction_row(ex, pred)}
    if isinstance(proc, (str, list)) and proc != pred:
      row["postprocessed_prediction"] = proc
    if scores is not None:
      row["target_logprob"] = float(scores[i])
    rows.append(row)
  return rows
