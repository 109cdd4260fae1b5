"""Evaluates one checkpoint: generation metrics, ranking protocols, probes.

`evaluate` is the library function behind `eval/main.py`. For every seqio
task (mixtures are expanded into their tasks) it

1. reads the first `num_examples` examples of `split` in order
   (`train.infer.task_examples`: the Task's own tokens, metadata included);
2. decodes the targets with the model (`train.infer.generate`, with a tqdm
   bar), applies
   the task's `postprocess_fn` and its `predict_metric_fns` (and
   `score_metric_fns` on `model.score_batch`), as `seqio.Evaluator` does,
   plus `redial_metric_fns` (default `REDIAL_METRIC_FNS`: end-to-end
   recall, BLEU, BLEU with titles masked, distinct-n) on ReDial tasks;
3. runs each ranking protocol, `fn(scorer, examples) -> dict`, on tasks
   whose examples carry `target_movies` (ReDial), with
   `scorer(examples, candidates) -> [B, C]` a `train.infer.CandidateScorer`
   (`model.score_candidates` on the same encoder rows generation used;
   `eval.ranking.make_protocols` gives the ReDial protocols);

then runs each probe, `fn(pair_score_fn) -> dict`, with a
`train.infer.PairScorer` (`model.score_batch`). It writes
`output_dir/metrics.json`, `output_dir/predictions.jsonl` and TensorBoard
scalars (`summary_dir`, default `output_dir`), and prints the path of
`metrics.json`.

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
import numpy as np
import seqio
import tensorflow as tf

from eval import metrics as metrics_lib
from eval import ranking
from eval.probes import probe_lib
from train import infer

Array = Any  # jax.Array or np.ndarray.
PyTree = Any
Example = dict[str, Any]
RankingFn = ranking.RankingFn  # (CandidateScoreFn, examples) -> metrics.
ProbeFn = probe_lib.ProbeFn  # (PairScoreFn) -> metrics.

METADATA_KEY = "target_movies"  # Examples with it are ReDial examples.
MetricFn = Callable[[Sequence[Any], Sequence[Any]], Mapping[str, float]]
# Metric functions run on ReDial tasks (besides the tasks' own metric_fns).
REDIAL_METRIC_FNS = metrics_lib.REDIAL_METRIC_FNS


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


# Decoding settings: `train.infer.DecodeConfig` (gin name
# `evaluation.DecodeConfig`).
DecodeConfig = infer.DecodeConfig


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
  """Writes `metrics.json`, `predictions.jsonl` and TensorBoard scalars.

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
    decode: DecodeConfig = DecodeConfig(),
    inputs_length: int = 512,
    targets_length: int = 64,
    batch_size: int = 16,
    redial_metric_fns: Sequence[MetricFn] = REDIAL_METRIC_FNS,
    ranking_fns: Optional[Mapping[str, RankingFn]] = None,
    ranking_examples: Optional[int] = None,
    probe_fns: Optional[Mapping[str, ProbeFn]] = None,
    score_targets: bool = True,
    summary_dir: Optional[str] = None,
) -> dict[str, float]:
  """Evaluates a model on seqio tasks, ranking protocols and probes.

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
      tasks whose examples have `target_movies` (ReDial), after the task's
      `postprocess_fn`.
    ranking_fns: protocol name -> `fn(scorer, examples) -> metrics`, run on
      the same tasks (`ranking.make_protocols`) with a
      `train.infer.CandidateScorer` (the encoder rows generation used).
    ranking_examples: rank over the first this many examples only (ranking
      the whole movie list costs far more than decoding); all when None.
    probe_fns: probe name -> `fn(pair_score_fn) -> metrics`, called with a
      `train.infer.PairScorer`.
    score_targets: also compute target log-likelihoods (`gen/target_logprob`
      and the tasks' `score_metric_fns`).
    summary_dir: TensorBoard dir; `output_dir` when None.

  Returns:
    The flat metrics written to `metrics.json`.
  """
  lengths = {"inputs": inputs_length, "targets": targets_length}
  scorer = infer.CandidateScorer(model, params, task_feature_lengths=lengths,
                                 batch_size=batch_size)
  pair_scorer = infer.PairScorer(model, params, task_feature_lengths=lengths,
                                 batch_size=batch_size)
  task_list = expand_tasks(tasks)
  metrics, rows, timing, counts = {}, [], {}, {}
  for task in task_list:
    prefix = f"{task.name}/" if len(task_list) > 1 else ""
    start = time.time()
    examples = infer.task_examples(task, split=split,
                                   task_feature_lengths=lengths,
                                   num_examples=num_examples)
    if not examples:
      raise ValueError(f"task {task.name!r} split {split!r} has no examples")
    counts[task.name] = len(examples)
    predictions = infer.generate(
        model, params, examples, task_feature_lengths=lengths, decode=decode,
        batch_size=batch_size, desc=f"generate {task.name}")
    timing[f"{task.name}/predict_seconds"] = time.time() - start
    scores = None
    if score_targets:
      scores = infer.score_targets(model, params, examples,
                                   task_feature_lengths=lengths,
                                   batch_size=batch_size)
      metrics[prefix + "gen/target_logprob"] = float(np.mean(scores))
    is_redial = METADATA_KEY in examples[0]
    task_result, processed = task_metrics(
        task, examples, predictions, scores,
        extra_metric_fns=redial_metric_fns if is_redial else ())
    metrics.update({prefix + k: _scalar(k, v) for k, v in task_result.items()})
    if is_redial:
      for name, fn in (ranking_fns or {}).items():
        start = time.time()
        result = fn(scorer, examples[:ranking_examples])
        metrics.update({prefix + k: _scalar(k, v) for k, v in result.items()})
        timing[f"{task.name}/{name}_seconds"] = time.time() - start
    for i, (ex, pred, proc) in enumerate(zip(examples, predictions,
                                             processed)):
      row = {"task": task.name, "index": i,
             **infer.prediction_row(ex, pred)}
      if isinstance(proc, (str, list)) and proc != pred:
        row["postprocessed_prediction"] = proc
      if scores is not None:
        row["target_logprob"] = float(scores[i])
      rows.append(row)
  for name, fn in (probe_fns or {}).items():
    start = time.time()
    pair_scorer.desc = f"probe {name}"
    result = fn(pair_scorer)
    metrics.update({k: _scalar(k, v) for k, v in result.items()})
    timing[f"probe_{name}_seconds"] = time.time() - start
  info = {"tasks": [t.name for t in task_list], "split": split,
          "num_examples": counts, "decoding": dataclasses.asdict(decode),
          "timing": timing}
  write_outputs(output_dir=output_dir, summary_dir=summary_dir, step=step,
                metrics=metrics, predictions=rows, info=info)
  path = os.path.join(output_dir, "metrics.json")
  logging.info("wrote %s", path)
  print(f"metrics: {path}", flush=True)
  return metrics
