"""Evaluates one checkpoint: generation metrics, ranking protocols, probes.

`evaluate` is the library function behind `eval/main.py`. It has two
stages, with nothing stateful between them:

1. **Model outputs**, computed once per task and split across processes
   once (`task_outputs`, `probe_scores`). For every seqio task (mixtures are
   expanded into their tasks) it reads the first `num_examples` examples of
   `split` in order (`train.model_inputs.task_examples`: the Task's own
   tokens, metadata included), builds their model features once (the
   model's feature converter) and computes
   - the decoded texts (`train.inference.decode_features`, tqdm bar),
   - the target log-probabilities (`score_features`),
   - on ReDial tasks with ranking protocols, one `[U, C]` score matrix over
     the U distinct encoder rows of the turns any protocol ranks (the rows
     generation decodes from) and the C candidate replies, tokenized once
     (`train.inference.score_candidates`, tqdm bar in rows with rows/s and
     an ETA: the slow pass);
   and, for each probe (`eval.probes.probe_lib.ProbeSet`, read by the
   probe's seqio Task), the log-probabilities of its correct and negative
   replies at the lengths it needs.
2. **Measurements**, pure functions of those outputs: the task's
   `postprocess_fn` and its `predict_metric_fns` (and `score_metric_fns` on
   the target scores), as `seqio.Evaluator` does, plus `redial_metric_fns`
   (default `REDIAL_METRIC_FNS`: end-to-end recall, BLEU, BLEU with titles
   masked, distinct-n) on ReDial tasks; each ranking protocol's
   `measure(samples, scores)` (`eval.ranking.Protocol`, its samples built
   once); `probe_lib.probe_metrics`.

It writes `output_dir/metrics.json`, `output_dir/predictions.jsonl`,
`output_dir/probe_pairs.jsonl` and TensorBoard scalars (`summary_dir`,
default `output_dir`), and prints the path of `metrics.json`.

With several processes (`train.distributed`; `eval.main --multiprocess` or
`--coordinator_address ...`) each stage-1 computation (the examples, the
distinct ranked rows, the probe pairs) is split across the processes in
whole batches and the results gathered, so the metrics and predictions are
those of one process; process 0 writes the files.

Metric names are those the metric functions return (`rec/recall@1`,
`gen/bleu`, ...); when several tasks are evaluated, task metrics are prefixed
with the task name (`crs_redial_v002/rec/recall@1`). Probe metrics keep their
`probe/<name>/...` names.
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
from crs_tasks import probe_io
from eval import ranking
from eval.probes import probe_lib
from train import distributed
from train import inference
from train import model_inputs

Array = Any  # jax.Array or np.ndarray.
PyTree = Any
Example = dict[str, Any]

METADATA_KEY = "target_movies"  # Examples with it are ReDial examples.
DEFAULT_LENGTHS = {"inputs": 512, "targets": 64}  # TASK_FEATURE_LENGTHS.
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
  probe_io.write_jsonl(os.path.join(output_dir, "predictions.jsonl"),
                       predictions)
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


def _take(features: model_inputs.Batch, part: slice) -> model_inputs.Batch:
  return {k: v[part] for k, v in features.items()}


# ============================ 1. Model outputs ==============================


@dataclasses.dataclass(frozen=True)
class TaskOutputs:
  """What the model computes for one task's examples (on every process).

  Attributes:
    predictions: decoded text per example.
    target_scores: log p(targets | inputs) per example, float32 [N], or
      None.
    candidate_scores: float32 [U, C]: log p(candidate reply | row) over the
      U distinct encoder rows of the ranked examples (None: no ranking).
    row_of: ranked example index -> its row of `candidate_scores`.
  """

  predictions: list[str]
  target_scores: Optional[np.ndarray] = None
  candidate_scores: Optional[np.ndarray] = None
  row_of: Mapping[int, int] = dataclasses.field(default_factory=dict)


def task_outputs(
    model: Model,
    params: PyTree,
    examples: Sequence[Example],
    *,
    task_feature_lengths: Mapping[str, int],
    decode: inference.DecodeConfig,
    batch_size: int,
    score_targets: bool = True,
    ranked: Sequence[int] = (),
    candidates: Sequence[str] = (),
    name: str = "",
    timing: Optional[dict[str, float]] = None,
) -> TaskOutputs:
  """Stage 1 for one task: its examples' model outputs, computed once.

  The model features are built once (the model's feature converter); each
  process decodes and scores its `process_batches` of the examples, and
  scores its `process_batches` of the distinct encoder rows of `ranked`
  against every candidate; the parts are gathered in order.

  Args:
    model: the model.
    params: its parameters.
    examples: the task's examples (`task_examples`).
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    decode: decoding settings.
    batch_size: rows per model call (generation, scoring, ranking).
    score_targets: also compute the target log-likelihoods.
    ranked: indices of the examples to rank (their encoder rows).
    candidates: the candidate replies (the score matrix's columns).
    name: the task name, for the progress bars.
    timing: gets `<name>/predict_seconds` and, when ranking,
      `<name>/ranking_scores_seconds`.

  Returns:
    The outputs, the same on every process.
  """
  timing = {} if timing is None else timing
  start = time.time()
  primary = distributed.is_primary()
  features = model_inputs.model_features(
      examples, task_feature_lengths,
      model_inputs.feature_converter_cls(model))
  part = process_batches(len(examples), batch_size)
  mine = _take(features, part)
  predictions = _gather(inference.decode_features(
      model, params, mine, decode=decode, batch_size=batch_size,
      max_decode_length=(decode.max_decode_length
                         or task_feature_lengths["targets"]),
      desc=f"generate {name}".strip(), progress=primary,
      first_batch=part.start // batch_size))
  target_scores = None
  if score_targets:
    target_scores = _gather_rows(inference.score_features(
        model, params, mine, batch_size=batch_size))
  timing[f"{name}/predict_seconds"] = time.time() - start
  if not ranked:
    return TaskOutputs(predictions, target_scores)
  start = time.time()
  encoder = features["encoder_input_tokens"]
  first, row_of = ranking.distinct_rows([encoder[i].tobytes()
                                         for i in ranked])
  rows = encoder[[ranked[i] for i in first]]
  part = process_batches(len(rows), batch_size)
  scores = _gather_rows(inference.score_candidates(
      model, params, rows[part], inference.candidate_tokens(
          model, candidates, task_feature_lengths["targets"]),
      batch_size=batch_size, desc=f"rank {name}".strip(), progress=primary))
  timing[f"{name}/ranking_scores_seconds"] = time.time() - start
  return TaskOutputs(predictions, target_scores, scores,
                     {ranked[i]: row for i, row in row_of.items()})


def probe_scores(
    model: Model,
    params: PyTree,
    probe: probe_lib.ProbeSet,
    *,
    batch_size: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
  """Stage 1 for one probe: log p(correct reply), log p(negative) [N] each.

  The 2N rows (`probe.model_examples()`) at `probe.lengths` (its longest
  input and target: nothing cut, whichever command scores it), each
  process scoring its `process_batches` (a tqdm bar on process 0 when
  `progress`).
  """
  features = model_inputs.model_features(
      probe.model_examples(), probe.lengths,
      model_inputs.feature_converter_cls(model))
  num = len(features["encoder_input_tokens"])
  part = process_batches(num, batch_size)
  scores = _gather_rows(inference.score_features(
      model, params, _take(features, part), batch_size=batch_size,
      desc=f"probe {probe.name}",
      progress=progress and distributed.is_primary()))
  return scores[: num // 2], scores[num // 2:]


# ============================= 2. Measurements ==============================


def ranking_metrics(
    protocols: Mapping[str, ranking.Protocol],
    samples: Mapping[str, ranking.RankingSamples],
    outputs: TaskOutputs,
) -> tuple[dict[str, float], dict[int, dict[str, dict[str, int]]]]:
  """Each protocol's metrics on the score matrix (pure), and the label
  ranks behind them: example index -> protocol name -> {title: rank}."""
  out, ranks_of = {}, {}
  for name, protocol in protocols.items():
    ranks = protocol.label_ranks(samples[name].with_rows(outputs.row_of),
                                 outputs.candidate_scores)
    out.update(protocol.measure_ranks(samples[name], ranks))
    for example, titles in protocol.ranks_by_row(samples[name],
                                                 ranks).items():
      ranks_of.setdefault(example, {})[name] = titles
  return out, ranks_of


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
    task_feature_lengths: Optional[Mapping[str, int]] = None,
    batch_size: int = 16,
    redial_metric_fns: Sequence[MetricFn] = metrics_lib.REDIAL_METRIC_FNS,
    ranking_fns: Optional[Mapping[str, ranking.Protocol]] = None,
    ranking_examples: Optional[int] = None,
    probes: Optional[Mapping[str, probe_lib.ProbeSet]] = None,
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
    task_feature_lengths: `{"inputs": encoder length (inputs are trimmed),
      "targets": decoder length for targets and scoring}`, as t5x's
      TASK_FEATURE_LENGTHS; default `DEFAULT_LENGTHS` (512/64).
    batch_size: examples per model call.
    redial_metric_fns: `(targets, predictions) -> metrics` functions run on
      ReDial tasks (examples with `target_movies`), after `postprocess_fn`.
    ranking_fns: protocol name -> `ranking.Protocol` (`make_protocols`; one
      movie list), run on the same tasks on one score matrix of the model.
    ranking_examples: rank over the first this many examples only (ranking
      is costly); all when None.
    probes: probe name -> `probe_lib.ProbeSet` (`probe_lib.load_probes`).
    score_targets: also compute target log-likelihoods (`gen/target_logprob`
      and the tasks' `score_metric_fns`).
    summary_dir: TensorBoard dir; `output_dir` when None.

  Returns:
    The flat metrics written to `metrics.json`.
  """
  del vocabulary  # The model's own output vocabulary decodes.
  lengths = dict(task_feature_lengths or DEFAULT_LENGTHS)
  if set(lengths) != {"inputs", "targets"}:
    raise ValueError("task_feature_lengths needs exactly the keys 'inputs' "
                     f"and 'targets', got {sorted(lengths)}")
  task_list = expand_tasks(tasks)
  ranking_fns = ranking_fns or {}
  candidates = []
  if ranking_fns:
    candidates = ranking.candidate_replies(
        next(iter(ranking_fns.values())).movies)
  metrics, rows, timing, counts = {}, [], {}, {}
  for task in task_list:
    prefix = f"{task.name}/" if len(task_list) > 1 else ""
    examples = model_inputs.task_examples(
        task, split=split, task_feature_lengths=lengths,
        num_examples=num_examples)
    if not examples:
      raise ValueError(f"task {task.name!r} split {split!r} has no examples")
    counts[task.name] = len(examples)
    is_redial = METADATA_KEY in examples[0]
    samples, ranked = {}, []
    if is_redial and ranking_fns:  # Built once, before any model call.
      samples = {name: p.samples(examples[:ranking_examples])
                 for name, p in ranking_fns.items()}
      ranked = sorted({r for s in samples.values() for r in s.rows})
    outputs = task_outputs(
        model, params, examples, task_feature_lengths=lengths, decode=decode,
        batch_size=batch_size, score_targets=score_targets, ranked=ranked,
        candidates=candidates, name=task.name, timing=timing)
    scores = outputs.target_scores
    if scores is not None:
      metrics[prefix + "gen/target_logprob"] = float(np.mean(scores))
    task_result, processed = task_metrics(
        task, examples, outputs.predictions, scores,
        extra_metric_fns=redial_metric_fns if is_redial else ())
    label_ranks = {}
    if samples:
      ranked_metrics, label_ranks = ranking_metrics(ranking_fns, samples,
                                                    outputs)
      task_result.update(ranked_metrics)
    metrics.update({prefix + k: _scalar(k, v) for k, v in task_result.items()})
    rows += prediction_rows(task.name, examples, outputs.predictions,
                            processed, scores, label_ranks)
  pairs = []
  for name, probe in (probes or {}).items():
    start = time.time()
    positive, negative = probe_scores(model, params, probe,
                                      batch_size=batch_size)
    scalars, probe_rows = probe_lib.probe_metrics(probe, positive, negative)
    metrics.update(scalars)
    pairs += probe_rows
    timing[f"probe_{name}_seconds"] = time.time() - start
  if distributed.is_primary():  # The files exist once.
    if pairs:
      probe_io.write_jsonl(
          os.path.join(output_dir, probe_lib.PROBE_PAIRS_FILE), pairs)
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
    label_ranks: Optional[Mapping[int, Mapping[str, Any]]] = None,
) -> list[dict[str, Any]]:
  """The `predictions.jsonl` rows of one task: `inference.prediction_row`, plus
  `task`, `index`, the postprocessed prediction (when it differs), the
  target log-likelihood and, on ranked turns, `label_ranks`: protocol name
  -> {target title: its 1-based rank among the candidates} (the samples
  behind `rank*/recall@k`, for paired tests between runs)."""
  rows = []
  for i, (ex, pred, proc) in enumerate(zip(examples, predictions,
                                           processed)):
    row = {"task": task_name, "index": i, **inference.prediction_row(ex, pred)}
    if isinstance(proc, (str, list)) and proc != pred:
      row["postprocessed_prediction"] = proc
    if scores is not None:
      row["target_logprob"] = float(scores[i])
    if label_ranks and i in label_ranks:
      row["label_ranks"] = label_ranks[i]
    rows.append(row)
  return rows
