r"""The inference library: Task -> model batches -> decoded text, scores, JSONL.

  python -m train.infer --gin_file=runs/infer.gin \
    --gin.CHECKPOINT_PATH="'/tmp/t5cr'" \
    --gin.MIXTURE_OR_TASK_NAME="'crs_sample_redial_v002'" \
    --gin.INFER_OUTPUT_DIR="'/tmp/t5cr/infer'"

Every path from text to the model goes through here, so generation,
target scoring, ranking, probes and chat feed the model the same tokens:

  task_examples(task, split, lengths)  the Task's own pipeline (tokenized and
                                       trimmed as in training: ReDial keeps the
                                       prefix and the most recent tokens),
                                       as python dicts with every feature
  tokenize_texts(vocab, texts, length) texts that are no Task's (probe pairs,
                                       candidate replies, chat): seqio's
                                       tokenize + append_eos_after_trim
  model_features(examples, lengths,    the model's FEATURE_CONVERTER_CLS
                 converter_cls)        (seqio EncDecFeatureConverter) ->
                                       `encoder_input_tokens`, ... arrays
  generate / score_targets             `predict_batch` / `score_batch` over
                                       batches of those rows (tqdm bar)
  CandidateScorer                      log p(candidate reply | example) for a
                                       list of replies (`score_candidates`),
                                       cached per encoder row
  PairScorer                           log p(target | input) of text pairs
  predict_examples, write_jsonl        rows with metadata, atomic JSONL

Each function takes a plain list of examples and walks it in order, so a
multi-host caller can hand each process its own slice.
"""

import dataclasses
import importlib
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

from absl import app
from absl import logging
import gin
import jax
import numpy as np
import seqio
import tensorflow as tf
import tqdm

from crs_tasks import cli
from crs_tasks import postprocessors
from crs_tasks import probe_io
from train import checkpointing
from train import gin_flags
from train import input_pipeline

PyTree = Any
Example = dict[str, Any]
Batch = dict[str, np.ndarray]
EOS_ID = 1  # seqio's EOS; every vocabulary here uses it.


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """Decoding settings passed to `model.predict_batch`.

  Attributes:
    method: `"greedy"`, `"beam"` or `"sample"`.
    num_beams: beam width for `"beam"`.
    temperature: sampling temperature for `"sample"`.
    max_decode_length: decoded tokens; the targets length when None.
    seed: PRNG seed for `"sample"` (batch i uses `fold_in(seed, i)`).
  """

  method: str = "greedy"
  num_beams: int = 4
  temperature: float = 1.0
  max_decode_length: Optional[int] = None
  seed: int = 0

  def __post_init__(self):
    if self.method not in ("greedy", "beam", "sample"):
      raise ValueError("decode method must be greedy, beam or sample, got "
                       f"{self.method!r}")


# ================================ Examples ==================================


def to_python(value: Any) -> Any:
  """A numpy/tf feature value as JSON-friendly python.

  Bytes become str (UTF-8), arrays lists (of str for string arrays), numpy
  scalars python scalars: `np.array([b"heat (1995)"])` -> `["heat (1995)"]`.
  """
  if isinstance(value, bytes):
    return postprocessors.to_text(value)
  if isinstance(value, np.ndarray):
    if value.ndim == 0:
      return to_python(value.item())
    return [to_python(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [to_python(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


def task_examples(
    task: Any,
    *,
    split: str,
    task_feature_lengths: Mapping[str, int],
    num_examples: Optional[int] = None,
    use_cached: bool = False,
) -> list[Example]:
  """The first `num_examples` examples of a Task split, in order.

  The examples come out of the Task's own preprocessors with
  `task_feature_lengths`, so their `inputs`/`targets` token ids are exactly
  what training and every evaluation feed the model.

  Args:
    task: a `seqio.Task` or a registered Task name.
    split: e.g. `"test"`.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    num_examples: how many; all when None.
    use_cached: read the seqio cache.

  Returns:
    Dicts of python values: token ids as lists of int, strings as str,
    string tensors as lists of str (`inputs_pretokenized`, metadata, ...).
  """
  if isinstance(task, str):
    task = seqio.get_mixture_or_task(task)
  ds = task.get_dataset(sequence_length=dict(task_feature_lengths),
                        split=split, shuffle=False, num_epochs=1,
                        use_cached=use_cached)
  if num_examples is not None:
    ds = ds.take(num_examples)
  return [{k: to_python(v) for k, v in ex.items()}
          for ex in ds.as_numpy_iterator()]


def tokenize_texts(vocabulary: Any, texts: Sequence[str],
                   length: int) -> list[list[int]]:
  """Token ids + EOS, the first `length - 1` pieces kept (seqio's
  `tokenize` + `append_eos_after_trim`, for texts that are no Task's)."""
  return [list(vocabulary.encode(t))[: length - 1] + [vocabulary.eos_id]
          for t in texts]


def texts_to_examples(input_vocabulary: Any, output_vocabulary: Any,
                      inputs: Sequence[str], targets: Sequence[str],
                      task_feature_lengths: Mapping[str, int]
                     ) -> list[Example]:
  """`{"inputs": ids, "targets": ids}` examples of text pairs."""
  if len(inputs) != len(targets):
    raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
  enc = tokenize_texts(input_vocabulary, inputs,
                       task_feature_lengths["inputs"])
  dec = tokenize_texts(output_vocabulary, targets,
                       task_feature_lengths["targets"])
  return [{"inputs": i, "targets": t} for i, t in zip(enc, dec)]


def feature_converter_cls(model: Any) -> type[seqio.FeatureConverter]:
  """The model's `FEATURE_CONVERTER_CLS` (seqio's EncDec one by default)."""
  return getattr(model, "FEATURE_CONVERTER_CLS", seqio.EncDecFeatureConverter)


def model_features(
    examples: Sequence[Mapping[str, Any]],
    task_feature_lengths: Mapping[str, int],
    converter_cls: type[seqio.FeatureConverter] = seqio.EncDecFeatureConverter,
) -> Batch:
  """Model features of examples, through the model's feature converter.

  Args:
    examples: each with `inputs` and (optionally, else empty) `targets`
      token ids, at most the task feature lengths long (as `task_examples`
      and `tokenize_texts` make them).
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    converter_cls: the model's `FEATURE_CONVERTER_CLS`.

  Returns:
    `{"encoder_input_tokens": int32 [N, Lin], "decoder_input_tokens": ...,
    "decoder_target_tokens": ..., "decoder_loss_weights": ...}` (unpacked,
    one row per example, in order).
  """
  lengths = dict(task_feature_lengths)

  def rows():
    for ex in examples:
      yield {"inputs": np.asarray(ex["inputs"], np.int32),
             "targets": np.asarray(ex.get("targets", []), np.int32)}

  spec = tf.TensorSpec([None], tf.int32)
  ds = tf.data.Dataset.from_generator(
      rows, output_signature={"inputs": spec, "targets": spec})
  ds = converter_cls(pack=False)(ds, lengths)
  out = {}
  for batch in ds.batch(1024).as_numpy_iterator():
    for key, value in batch.items():
      out.setdefault(key, []).append(value)
  if not out:
    raise ValueError("model_features: no examples")
  return {k: np.concatenate(v) for k, v in out.items()}


def iter_batches(features: Batch, batch_size: int
                ) -> Iterator[tuple[int, int, Batch]]:
  """`(start, end, batch)` over rows `[start, end)` of `features`.

  A last, smaller batch is filled with copies of its last row, so every
  call has one shape (nothing recompiles); use only rows `:end - start`.
  """
  n = len(next(iter(features.values())))
  for start in range(0, n, batch_size):
    end = min(start + batch_size, n)
    batch = {}
    for key, value in features.items():
      rows = value[start:end]
      if end - start < batch_size:
        rows = np.concatenate(
            [rows, np.repeat(rows[-1:], batch_size - (end - start), 0)])
      batch[key] = rows
    yield start, end, batch


def decode_tokens(vocabulary: seqio.Vocabulary, ids: Sequence[int]) -> str:
  """Token ids -> text, stopping at the first EOS and dropping padding."""
  out = []
  for i in np.asarray(ids).tolist():
    if i == vocabulary.eos_id:
      break
    if i != 0:
      out.append(i)
  return vocabulary.decode(out)


# ============================ Model computations ============================


def generate(
    model: Any,
    params: PyTree,
    examples: Sequence[Mapping[str, Any]],
    *,
    task_feature_lengths: Mapping[str, int],
    decode: DecodeConfig = DecodeConfig(),
    batch_size: int = 16,
    desc: str = "generate",
    progress: bool = True,
) -> list[str]:
  """Decodes one text per example with `model.predict_batch`.

  Args:
    model: an `EncoderDecoderModel` (or the same API).
    params: its parameters.
    examples: `task_examples` (or `texts_to_examples`) rows.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    decode: decoding settings.
    batch_size: examples per call.
    desc: progress bar label.
    progress: show a tqdm bar (with ETA).

  Returns:
    The decoded strings, one per example.
  """
  if not examples:
    return []
  features = model_features(examples, task_feature_lengths,
                            feature_converter_cls(model))
  max_len = decode.max_decode_length or task_feature_lengths["targets"]
  rng = jax.random.PRNGKey(decode.seed)
  texts = []
  with tqdm.tqdm(total=len(examples), desc=desc, unit="ex",
                 disable=not progress) as bar:
    for i, (start, end, batch) in enumerate(
        iter_batches(features, batch_size)):
      tokens = model.predict_batch(
          params, batch, decode_method=decode.method,
          num_beams=decode.num_beams, temperature=decode.temperature,
          max_decode_length=max_len, rng=jax.random.fold_in(rng, i))
      texts += [decode_tokens(model.output_vocabulary, row)
                for row in np.asarray(tokens)[: end - start]]
      bar.update(end - start)
  return texts


def score_targets(
    model: Any,
    params: PyTree,
    examples: Sequence[Mapping[str, Any]],
    *,
    task_feature_lengths: Mapping[str, int],
    batch_size: int = 16,
    desc: str = "score",
    progress: bool = False,
) -> np.ndarray:
  """log p(targets | inputs) of each example (`model.score_batch`), [N]."""
  if not examples:
    return np.zeros((0,), np.float32)
  features = model_features(examples, task_feature_lengths,
                            feature_converter_cls(model))
  out = []
  with tqdm.tqdm(total=len(examples), desc=desc, unit="pair",
                 disable=not progress) as bar:
    for start, end, batch in iter_batches(features, batch_size):
      out.append(np.asarray(model.score_batch(params, batch))[: end - start])
      bar.update(end - start)
  return np.concatenate(out).astype(np.float32)


class PairScorer:
  """log p(target | input) of text pairs: `scorer(inputs, targets) -> [N]`.

  Texts are tokenized with `tokenize_texts` and scored by `score_targets`;
  the probes use it (`eval.probes.probe_lib.PairScoreFn`).
  """

  def __init__(self, model: Any, params: PyTree, *,
               task_feature_lengths: Mapping[str, int], batch_size: int = 16,
               progress: bool = True):
    self.model, self.params = model, params
    self.lengths = dict(task_feature_lengths)
    self.batch_size = batch_size
    self.progress = progress
    self.desc = "pairs"

  def __call__(self, inputs: Sequence[str],
               targets: Sequence[str]) -> np.ndarray:
    examples = texts_to_examples(
        self.model.input_vocabulary, self.model.output_vocabulary, inputs,
        targets, self.lengths)
    return score_targets(self.model, self.params, examples,
                         task_feature_lengths=self.lengths,
                         batch_size=self.batch_size, desc=self.desc,
                         progress=self.progress)


class CandidateScorer:
  """log p(candidate reply | example) for every pair, float32 [B, C].

  `scorer(examples, candidates)`: each example's encoder row is its
  `model_features` row, i.e. the Task's own `inputs` tokens (for ReDial the
  prefix and the most recent history, as generation sees it); candidates
  are replies (`"@ heat (1995) @"`) tokenized as targets. Calls
  `model.score_candidates(params, [b, Lin], [C, Lt])` with `b` up to
  `batch_size` (a last partial batch padded to a power of two, so few shapes
  compile). Scores are cached per encoder row for the current candidate
  list, so a turn with several labels, or the same turn under another
  protocol, is scored once.
  """

  def __init__(self, model: Any, params: PyTree, *,
               task_feature_lengths: Mapping[str, int], batch_size: int = 16):
    self.model, self.params = model, params
    self.lengths = dict(task_feature_lengths)
    self.batch_size = batch_size
    self._candidates: Optional[tuple[str, ...]] = None
    self._candidate_tokens: Optional[np.ndarray] = None
    self._cache: dict[bytes, np.ndarray] = {}

  def candidate_tokens(self, candidates: Sequence[str]) -> np.ndarray:
    """int32 [C, Lt] target rows of the replies (cached per list)."""
    key = tuple(candidates)
    if key != self._candidates:
      vocab = self.model.output_vocabulary
      rows = [{"inputs": [EOS_ID], "targets": t} for t in tokenize_texts(
          vocab, candidates, self.lengths["targets"])]
      self._candidate_tokens = model_features(
          rows, self.lengths, feature_converter_cls(self.model)
      )["decoder_target_tokens"]
      self._candidates, self._cache = key, {}
    return self._candidate_tokens

  def encoder_rows(self, examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """int32 [B, Lin]: the examples' encoder rows, as generation builds
    them."""
    return model_features(examples, self.lengths,
                          feature_converter_cls(self.model)
                         )["encoder_input_tokens"]

  def __call__(self, examples: Sequence[Mapping[str, Any]],
               candidates: Sequence[str]) -> np.ndarray:
    cand = self.candidate_tokens(candidates)
    if not examples:
      return np.zeros((0, len(candidates)), np.float32)
    enc = self.encoder_rows(examples)
    keys = [row.tobytes() for row in enc]
    todo = list({k: i for i, k in enumerate(keys)
                 if k not in self._cache}.values())
    for start in range(0, len(todo), self.batch_size):
      idx = todo[start:start + self.batch_size]
      rows, n = enc[idx], len(idx)
      width = min(self.batch_size, 1 << (n - 1).bit_length())
      if n < width:
        rows = np.concatenate([rows, np.repeat(rows[-1:], width - n, 0)])
      scores = np.asarray(
          self.model.score_candidates(self.params, rows, cand))
      for i, row_scores in zip(idx, scores[:n]):
        self._cache[keys[i]] = row_scores.astype(np.float32)
    return np.stack([self._cache[k] for k in keys])


# ============================== Rows and JSONL ==============================


def predict_examples(
    model: Any,
    params: PyTree,
    *,
    task_name: str,
    split: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int = 8,
    decode_method: str = "greedy",
    num_beams: int = 4,
    temperature: float = 1.0,
    max_decode_length: Optional[int] = None,
    max_examples: Optional[int] = None,
    seed: int = 0,
    module: Optional[str] = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
  """Decodes `split` of a Task and returns one row per example.

  Args:
    model: an `EncoderDecoderModel`.
    params: its params.
    task_name: a registered seqio Task (for a Mixture, call once per task).
    split: split to decode, in order.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    batch_size: examples per decoding call.
    decode_method: "greedy", "beam" or "sample".
    num_beams: beams for "beam".
    temperature: temperature for "sample".
    max_decode_length: decoded tokens (default: the targets length).
    max_examples: decode only the first examples.
    seed: sampling seed (batch i uses `fold_in(seed, i)`).
    module: module to import first (registers the task).
    progress: show a progress bar.

  Returns:
    Rows with `inputs`, `targets`, `prediction` and the task's other
    features (token-id features are left out).

  Raises:
    ValueError: an unknown `decode_method`.
  """
  if module:
    importlib.import_module(module)
  decode = DecodeConfig(decode_method, num_beams, temperature,
                        max_decode_length, seed)
  examples = task_examples(task_name, split=split,
                           task_feature_lengths=task_feature_lengths,
                           num_examples=max_examples)
  predictions = generate(model, params, examples,
                         task_feature_lengths=task_feature_lengths,
                         decode=decode, batch_size=batch_size,
                         desc=task_name, progress=progress)
  return [prediction_row(ex, p) for ex, p in zip(examples, predictions)]


def prediction_row(example: Mapping[str, Any],
                   prediction: str) -> dict[str, Any]:
  """`inputs`, `targets` (text), `prediction` and the other features
  (metadata), token ids left out."""
  row = {
      "inputs": example.get("inputs_pretokenized"),
      "targets": example.get("targets_pretokenized"),
      "prediction": prediction,
  }
  for key, value in example.items():
    if key in ("inputs", "targets") or key.endswith("_pretokenized"):
      continue
    row[key] = to_python(value)
  return row


def write_jsonl(rows: Sequence[Mapping[str, Any]], path: str) -> str:
  """Writes rows as JSON lines, atomically (`crs_tasks.probe_io.write_jsonl`,
  the project's one JSONL writer), and returns the path."""
  return probe_io.write_jsonl(path, rows)


def infer(
    *,
    checkpoint_path: str,
    mixture_or_task_name: str,
    output_dir: str,
    task_feature_lengths: Mapping[str, int],
    split: str = "test",
    step: Optional[int] = None,
    batch_size: int = 8,
    decode_method: str = "greedy",
    num_beams: int = 4,
    temperature: float = 1.0,
    max_examples: Optional[int] = None,
    seed: int = 0,
    module: Optional[str] = "crs_tasks",
) -> list[str]:
  """Loads MODEL_DIR `checkpoint_path` and writes one JSONL file per task.

  Args:
    checkpoint_path: a model directory written by training.
    mixture_or_task_name: a Task, or a Mixture (each sub-task with `split`).
    output_dir: where `<task>-<split>.jsonl` files go.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    split: split to decode.
    step: checkpoint step (None: latest).
    batch_size: examples per decoding call.
    decode_method: "greedy", "beam" or "sample".
    num_beams: beams for "beam".
    temperature: temperature for "sample".
    max_examples: per task, decode only the first examples.
    seed: sampling seed.
    module: module to import first (registers the tasks).

  Returns:
    The written paths.
  """
  model, params, step = checkpointing.load_model(checkpoint_path, step=step)
  provider = input_pipeline.get_provider(input_pipeline.DatasetConfig(
      mixture_or_task_name, task_feature_lengths, split, batch_size,
      module=module))
  paths = []
  for task in getattr(provider, "tasks", [provider]):
    if split not in task.splits:
      logging.warning("task %s has no split %r; skipped", task.name, split)
      continue
    rows = predict_examples(
        model, params, task_name=task.name, split=split,
        task_feature_lengths=task_feature_lengths, batch_size=batch_size,
        decode_method=decode_method, num_beams=num_beams,
        temperature=temperature, max_examples=max_examples, seed=seed)
    path = os.path.join(output_dir, f"{task.name}-{split}.jsonl")
    paths.append(write_jsonl(rows, path))
    logging.info("step %d: wrote %d predictions to %s", step, len(rows), path)
    print(f"wrote {len(rows)} predictions to {path}", flush=True)
  return paths


def format_predictions(
    rows: Sequence[Mapping[str, Any]], max_input_chars: int = 160
) -> str:
  """Rows from `predict_examples` as text: input tail, target, prediction."""
  lines = []
  for i, row in enumerate(rows):
    text = row.get("inputs") or ""
    tail = text if len(text) <= max_input_chars else (
        "..." + text[-max_input_chars:])
    lines += [f"[{i}] input:      {tail}",
              f"    target:     {row.get('targets')}",
              f"    prediction: {row.get('prediction')}"]
  return "\n".join(lines)


def show_predictions(
    model: Any,
    params: PyTree,
    *,
    mixture_or_task_name: Optional[str] = None,
    split: str = "test",
    num_examples: int = 3,
    task_feature_lengths: Optional[Mapping[str, int]] = None,
    decode_method: str = "greedy",
    module: Optional[str] = "crs_tasks",
) -> list[dict[str, Any]]:
  """Decodes and prints the first examples of a task (after training).

  Args:
    model: the trained model.
    params: its params.
    mixture_or_task_name: a Task; None (or num_examples 0) does nothing.
    split: split to read.
    num_examples: examples to decode.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    decode_method: "greedy", "beam" or "sample".
    module: module to import first (registers the task).

  Returns:
    The decoded rows.
  """
  if not mixture_or_task_name or not num_examples:
    return []
  if task_feature_lengths is None:
    raise ValueError("show_predictions needs task_feature_lengths")
  rows = predict_examples(
      model, params, task_name=mixture_or_task_name, split=split,
      task_feature_lengths=task_feature_lengths,
      batch_size=min(num_examples, 8), decode_method=decode_method,
      max_examples=num_examples, module=module, progress=False)
  print(f"Predictions on {mixture_or_task_name}/{split}:")
  print(format_predictions(rows), flush=True)
  return rows


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Import the library copy of this module: under `python -m train.infer`
  # this file is `__main__`, while gin files bind `train.infer.infer`.
  from train import infer as infer_lib  # pylint: disable=g-import-not-at-top

  infer_using_gin = gin.configurable(infer_lib.infer)
  gin_flags.parse_from_flags()
  try:
    output_dir = gin.query_parameter("%INFER_OUTPUT_DIR")
  except ValueError:
    output_dir = None
  log = cli.log_to(output_dir if isinstance(output_dir, str) else None)
  paths = infer_using_gin()
  if paths:
    print(f"Outputs: {', '.join(paths)}" + (f"; log: {log}" if log else ""))
    print(cli.next_command(f"head -n 1 {paths[0]}"), flush=True)


if __name__ == "__main__":
  cli.run(main, name="infer", flags_parser=gin_flags.flags_parser)
