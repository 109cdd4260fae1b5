"""Evaluates one checkpoint: generation metrics, ranking protocols, probes.

`evaluate` is the library function behind `eval/main.py`. For every seqio
task (mixtures are expanded into their tasks) it

1. reads the first `num_examples` examples of `split` in order
   (`load_examples`), metadata features included;
2. decodes the targets with the model (`generate`, with a tqdm bar), applies
   the task's `postprocess_fn` and its `predict_metric_fns` (and
   `score_metric_fns` on `model.score_batch`), as `seqio.Evaluator` does,
   plus `redial_metric_fns` (default `REDIAL_METRIC_FNS`: end-to-end
   recall, BLEU, BLEU with titles masked, distinct-n) on ReDial tasks;
3. runs each ranking protocol, `fn(score_fn, examples) -> dict`, on tasks
   whose examples carry `target_movies` (ReDial), with `score_fn(contexts,
   candidates) -> [B, C]` backed by `model.score_candidates`
   (`eval.ranking.make_model_score_fn`; `eval.ranking.make_protocols` gives
   the ReDial protocols);

then runs each probe, `fn(pair_score_fn) -> dict`, with `pair_score_fn(inputs,
targets) -> [N]` backed by `model.score_batch`. It writes
`output_dir/metrics.json`, `output_dir/predictions.jsonl` and TensorBoard
scalars (`summary_dir`, default `output_dir`).

Metric names are those the metric functions return (`rec/recall@1`,
`gen/bleu`, ...); when several tasks are evaluated, task metrics are prefixed
with the task name (`crs_redial_v001/rec/recall@1`). Probe metrics keep their
`probe/<name>/...` names. To add a protocol, pass another callable; nothing
here needs to change.
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

import jax
import numpy as np
import seqio
import tensorflow as tf
import tqdm

from eval import metrics as metrics_lib
from eval import ranking

Array = Any  # jax.Array or np.ndarray.
PyTree = Any
Example = dict[str, Any]
ScoreFn = ranking.ScoreFn  # (contexts [B], candidates [C]) -> [B, C].
# (inputs [N], targets [N]) -> log-likelihoods [N].
PairScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]
RankingFn = Callable[[ScoreFn, Sequence[Example]], Mapping[str, float]]
ProbeFn = Callable[[PairScoreFn], Mapping[str, float]]

METADATA_KEY = "target_movies"  # Examples with it are ReDial examples.
MetricFn = Callable[[Sequence[Any], Sequence[Any]], Mapping[str, float]]
# Metric functions run on ReDial tasks (besides the tasks' own metric_fns).
REDIAL_METRIC_FNS = metrics_lib.REDIAL_METRIC_FNS


class Model(Protocol):
  """What `evaluate` needs of `train.models.EncoderDecoderModel`."""

  def predict_batch(self, params: PyTree, batch: Mapping[str, Array],
                    **kwargs) -> Array:
    ...

  def score_batch(self, params: PyTree, batch: Mapping[str, Array]) -> Array:
    ...

  def score_candidates(self, params: PyTree, encoder_input_tokens: Array,
                       candidate_tokens: Array) -> Array:
    ...


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """Decoding settings passed to `model.predict_batch`.

  Attributes:
    method: `"greedy"`, `"beam"` or `"sample"`.
    num_beams: beam width for `"beam"`.
    temperature: sampling temperature for `"sample"`.
    max_decode_length: decoded tokens; the targets length when None.
    seed: PRNG seed for `"sample"`.
  """

  method: str = "greedy"
  num_beams: int = 4
  temperature: float = 1.0
  max_decode_length: Optional[int] = None
  seed: int = 0

  def __post_init__(self):
    if self.method not in ("greedy", "beam", "sample"):
      raise ValueError("decode method must be 'greedy', 'beam' or 'sample', "
                       f"got {self.method!r}")


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


def _to_python(value: Any) -> Any:
  """Numpy scalars/arrays (bytes included) -> JSON-friendly python."""
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    if value.dtype.kind in ("S", "O"):
      return [_to_python(v) for v in value.tolist()]
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def load_examples(
    task: seqio.Task,
    *,
    split: str,
    sequence_length: Mapping[str, int],
    num_examples: Optional[int] = None,
) -> list[Example]:
  """The first `num_examples` examples of a task split, in order.

  Args:
    task: a registered seqio task.
    split: e.g. `"test"`.
    sequence_length: `{"inputs": ..., "targets": ...}`; tokens are trimmed.
    num_examples: how many; all when None.

  Returns:
    Examples as dicts: token features as lists of ints, strings as `str`,
    string tensors as lists of `str`.
  """
  ds = task.get_dataset(sequence_length=sequence_length, split=split,
                        shuffle=False, num_epochs=1, use_cached=False)
  if num_examples is not None:
    ds = ds.take(num_examples)
  return [{k: _to_python(v) for k, v in ex.items()}
          for ex in ds.as_numpy_iterator()]


def _pad(rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
  out = np.zeros((len(rows), length), np.int32)
  for i, row in enumerate(rows):
    row = list(row)[:length]
    out[i, : len(row)] = row
  return out


def make_batch(
    inputs: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    inputs_length: int,
    targets_length: int,
) -> dict[str, np.ndarray]:
  """An unpacked `EncDecFeatureConverter` batch from token id lists.

  Args:
    inputs: encoder token ids per example (EOS included).
    targets: decoder target ids per example (EOS included); may be empty
      lists for prediction.
    inputs_length: padded encoder length.
    targets_length: padded decoder length.

  Returns:
    `encoder_input_tokens`, `decoder_input_tokens` (targets shifted right),
    `decoder_target_tokens` and `decoder_loss_weights`, int32.
  """
  target_tokens = _pad(targets, targets_length)
  decoder_inputs = np.zeros_like(target_tokens)
  decoder_inputs[:, 1:] = target_tokens[:, :-1]
  return {
      "encoder_input_tokens": _pad(inputs, inputs_length),
      "decoder_input_tokens": decoder_inputs,
      "decoder_target_tokens": target_tokens,
      "decoder_loss_weights": (target_tokens > 0).astype(np.int32),
  }


def decode_tokens(vocabulary: seqio.Vocabulary, ids: Sequence[int]) -> str:
  """Text of one decoded row, cut at the first EOS."""
  ids = [int(i) for i in ids]
  if vocabulary.eos_id in ids:
    ids = ids[: ids.index(vocabulary.eos_id)]
  return vocabulary.decode([i for i in ids if i > 0])


# Token ids + EOS, seqio's trim; `eval.chat` uses it from here too.
encode_texts = ranking.encode_texts


def _batches(n: int, batch_size: int):
  for start in range(0, n, batch_size):
    yield start, min(start + batch_size, n)


def _pad_rows(rows: list, batch_size: int) -> list:
  """Repeats the last row so every batch has the same shape (no recompiles)."""
  return rows + [rows[-1]] * (batch_size - len(rows))


# ================================ Scoring ===================================


def generate(
    model: Model,
    params: PyTree,
    vocabulary: seqio.Vocabulary,
    inputs: Sequence[Sequence[int]],
    *,
    decode: DecodeConfig,
    inputs_length: int,
    targets_length: int,
    batch_size: int,
    desc: str = "predict",
    progress: bool = True,
) -> list[str]:
  """Decodes one text per input with `model.predict_batch`.

  Args:
    model: the model wrapper.
    params: its parameters.
    vocabulary: output vocabulary for detokenizing.
    inputs: encoder token ids per example.
    decode: decoding settings.
    inputs_length: padded encoder length.
    targets_length: padded decoder length.
    batch_size: examples per call (the last batch is padded).
    desc: progress bar label.
    progress: show a tqdm progress bar.

  Returns:
    Decoded strings, one per input.
  """
  max_len = decode.max_decode_length or targets_length
  rng = jax.random.PRNGKey(decode.seed)
  texts = []
  batches = list(_batches(len(inputs), batch_size))
  bar = tqdm.tqdm(batches, desc=desc, disable=not progress)
  for i, (start, end) in enumerate(bar):
    rows = _pad_rows(list(inputs[start:end]), batch_size)
    batch = make_batch(rows, [[]] * batch_size, inputs_length=inputs_length,
                       targets_length=max_len)
    tokens = model.predict_batch(
        params, batch, decode_method=decode.method,
        num_beams=decode.num_beams, temperature=decode.temperature,
        max_decode_length=max_len, rng=jax.random.fold_in(rng, i))
    tokens = np.asarray(tokens)[: end - start]
    texts += [decode_tokens(vocabulary, row) for row in tokens]
  return texts


def make_pair_score_fn(
    model: Model,
    params: PyTree,
    vocabulary: seqio.Vocabulary,
    *,
    inputs_length: int,
    targets_length: int,
    batch_size: int,
) -> PairScoreFn:
  """`fn(inputs, targets) -> [N]` log-likelihoods via `model.score_batch`.

  Args:
    model: the model wrapper.
    params: its parameters.
    vocabulary: for tokenizing the strings (EOS appended).
    inputs_length: encoder length (longer inputs are truncated).
    targets_length: decoder length (longer targets are truncated).
    batch_size: pairs per call.

  Returns:
    The scoring function.
  """

  def score(inputs: Sequence[str], targets: Sequence[str]) -> np.ndarray:
    if len(inputs) != len(targets):
      raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    return score_token_pairs(
        model, params, encode_texts(vocabulary, inputs, inputs_length),
        encode_texts(vocabulary, targets, targets_length),
        inputs_length=inputs_length, targets_length=targets_length,
        batch_size=batch_size)

  return score


def score_token_pairs(
    model: Model,
    params: PyTree,
    inputs: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    inputs_length: int,
    targets_length: int,
    batch_size: int,
) -> np.ndarray:
  """Sum of target-token log-probabilities of each (inputs, targets) pair.

  Args:
    model: the model wrapper.
    params: its parameters.
    inputs: encoder token ids per pair.
    targets: target token ids per pair (EOS included).
    inputs_length: padded encoder length.
    targets_length: padded decoder length.
    batch_size: pairs per `model.score_batch` call.

  Returns:
    float32 [N].
  """
  out = []
  for start, end in _batches(len(inputs), batch_size):
    batch = make_batch(
        _pad_rows(list(inputs[start:end]), batch_size),
        _pad_rows(list(targets[start:end]), batch_size),
        inputs_length=inputs_length, targets_length=targets_length)
    out.append(np.asarray(model.score_batch(params, batch))[: end - start])
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


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
  with open(os.path.join(output_dir, "metrics.json"), "w",
            encoding="utf-8") as f:
    json.dump({"step": step, **info, "metrics": dict(metrics)}, f, indent=2,
              sort_keys=False)
  with open(os.path.join(output_dir, "predictions.jsonl"), "w",
            encoding="utf-8") as f:
    for row in predictions:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
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
    ranking_fns: protocol name -> `fn(score_fn, examples) -> metrics`, run on
      the same tasks (`ranking.make_protocols`).
    ranking_examples: rank over the first this many examples only (ranking
      the whole movie list costs far more than decoding); all when None.
    probe_fns: probe name -> `fn(pair_score_fn) -> metrics`.
    score_targets: also compute target log-likelihoods (`gen/target_logprob`
      and the tasks' `score_metric_fns`).
    summary_dir: TensorBoard dir; `output_dir` when None.

  Returns:
    The flat metrics written to `metrics.json`.
  """
  lengths = {"inputs": inputs_length, "targets": targets_length}
  common = dict(inputs_length=inputs_length, targets_length=targets_length,
                batch_size=batch_size)
  score_fn = ranking.make_model_score_fn(model, params, vocabulary, **common)
  pair_score_fn = make_pair_score_fn(model, params, vocabulary, **common)
  task_list = expand_tasks(tasks)
  metrics, rows, timing, counts = {}, [], {}, {}
  for task in task_list:
    prefix = f"{task.name}/" if len(task_list) > 1 else ""
    start = time.time()
    examples = load_examples(task, split=split, sequence_length=lengths,
                             num_examples=num_examples)
    if not examples:
      raise ValueError(f"task {task.name!r} split {split!r} has no examples")
    counts[task.name] = len(examples)
    predictions = generate(
        model, params, vocabulary, [ex["inputs"] for ex in examples],
        decode=decode, desc=task.name, **common)
    timing[f"{task.name}/predict_seconds"] = time.time() - start
    scores = None
    if score_targets:
      scores = score_token_pairs(
          model, params, [ex["inputs"] for ex in examples],
          [ex["targets"] for ex in examples], **common)
      metrics[prefix + "gen/target_logprob"] = float(np.mean(scores))
    is_redial = METADATA_KEY in examples[0]
    task_result, processed = task_metrics(
        task, examples, predictions, scores,
        extra_metric_fns=redial_metric_fns if is_redial else ())
    metrics.update({prefix + k: _scalar(k, v) for k, v in task_result.items()})
    if is_redial:
      for name, fn in (ranking_fns or {}).items():
        start = time.time()
        result = fn(score_fn, examples[:ranking_examples])
        metrics.update({prefix + k: _scalar(k, v) for k, v in result.items()})
        timing[f"{task.name}/{name}_seconds"] = time.time() - start
    for i, (ex, pred, proc) in enumerate(zip(examples, predictions,
                                             processed)):
      row = {"task": task.name, "index": i,
             "inputs": ex.get("inputs_pretokenized"),
             "targets": ex.get("targets_pretokenized"), "prediction": pred}
      if isinstance(proc, (str, list)) and proc != pred:
        row["postprocessed_prediction"] = proc
      if scores is not None:
        row["target_logprob"] = float(scores[i])
      row.update({k: v for k, v in ex.items() if k not in row
                  and k not in ("inputs", "targets")
                  and not k.endswith("_pretokenized")})
      rows.append(row)
  for name, fn in (probe_fns or {}).items():
    start = time.time()
    result = fn(pair_score_fn)
    metrics.update({k: _scalar(k, v) for k, v in result.items()})
    timing[f"probe_{name}_seconds"] = time.time() - start
  info = {"tasks": [t.name for t in task_list], "split": split,
          "num_examples": counts, "decoding": dataclasses.asdict(decode),
          "timing": timing}
  write_outputs(output_dir=output_dir, summary_dir=summary_dir, step=step,
                metrics=metrics, predictions=rows, info=info)
  return metrics
