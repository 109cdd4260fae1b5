"""Running a model over examples: decoded text and log-likelihoods.

The examples and their model features come from `train.model_inputs`, so
every caller feeds the model the Task's own tokens:

  generate / score_targets             `predict_batch` / `score_batch` over
                                       batches of `model_features` rows
                                       (tqdm bar); `decode_features` /
                                       `score_features` on rows already
                                       built
  score_candidates                     log p(candidate | encoder row) [U, C]
                                       (`model.score_candidates` over
                                       batches of rows; tqdm bar in rows)
  candidate_tokens                     candidate replies -> [C, Lt] targets
  CandidateScorer                      `(examples, candidates) -> [B, C]`,
                                       the two above on examples
  decode_tokens                        token ids -> text (up to EOS)
  prediction_row                       an example and its decoded text ->
                                       a JSON row (`predictions.jsonl`)

Each function walks its rows in order, so a multi-host caller can hand each
process its own slice.
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
import seqio
import tqdm

from crs_tasks import postprocessors
from train import decoding
from train import model_inputs

PyTree = Any
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
    if self.method not in decoding.DECODE_METHODS:
      raise ValueError(f"decode method must be one of "
                       f"{', '.join(decoding.DECODE_METHODS)}, got "
                       f"{self.method!r}")


def decode_tokens(vocabulary: seqio.Vocabulary, ids: Sequence[int]) -> str:
  """Token ids -> text, stopping at the first EOS and dropping padding."""
  out = []
  for i in np.asarray(ids).tolist():
    if i == vocabulary.eos_id:
      break
    if i != 0:
      out.append(i)
  return vocabulary.decode(out)


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
    first_batch: int = 0,
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
    first_batch: the index of the first batch in the whole run (a process
      decoding batches k.. of a multi-process run passes k), so that batch i
      samples with `fold_in(seed, i)` whatever the process count.

  Returns:
    The decoded strings, one per example.
  """
  if not examples:
    return []
  return decode_features(
      model, params, _features(model, examples, task_feature_lengths),
      max_decode_length=(decode.max_decode_length
                         or task_feature_lengths["targets"]),
      decode=decode, batch_size=batch_size, desc=desc, progress=progress,
      first_batch=first_batch)


def decode_features(
    model: Any,
    params: PyTree,
    features: model_inputs.Batch,
    *,
    max_decode_length: int,
    decode: DecodeConfig = DecodeConfig(),
    batch_size: int = 16,
    desc: str = "generate",
    progress: bool = True,
    first_batch: int = 0,
) -> list[str]:
  """`generate` on model features already built (`model_features` rows).

  Args:
    model: an `EncoderDecoderModel` (or the same API).
    params: its parameters.
    features: `model_inputs.model_features` rows (one per example).
    max_decode_length: decoded tokens (`decode.max_decode_length` or the
      targets length).
    decode: decoding settings.
    batch_size: rows per call.
    desc: progress bar label.
    progress: show a tqdm bar (with ETA).
    first_batch: see `generate`.

  Returns:
    The decoded strings, one per row.
  """
  num = _num_rows(features)
  rng = jax.random.PRNGKey(decode.seed)
  texts = []
  with tqdm.tqdm(total=num, desc=desc, unit="ex",
                 disable=not progress or not num) as bar:
    for i, (start, end, batch) in enumerate(
        model_inputs.iter_batches(features, batch_size)):
      tokens = model.predict_batch(
          params, batch, decode_method=decode.method,
          num_beams=decode.num_beams, temperature=decode.temperature,
          max_decode_length=max_decode_length,
          rng=jax.random.fold_in(rng, first_batch + i))
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
  return score_features(
      model, params, _features(model, examples, task_feature_lengths),
      batch_size=batch_size, desc=desc, progress=progress)


def score_features(
    model: Any,
    params: PyTree,
    features: model_inputs.Batch,
    *,
    batch_size: int = 16,
    desc: str = "score",
    progress: bool = False,
) -> np.ndarray:
  """`score_targets` on model features already built, float32 [N]."""
  num = _num_rows(features)
  out = [np.zeros((0,), np.float32)]
  with tqdm.tqdm(total=num, desc=desc, unit="pair",
                 disable=not progress or not num) as bar:
    for start, end, batch in model_inputs.iter_batches(features, batch_size):
      out.append(np.asarray(model.score_batch(params, batch))[: end - start])
      bar.update(end - start)
  return np.concatenate(out).astype(np.float32)


def candidate_tokens(model: Any, candidates: Sequence[str],
                     targets_length: int) -> np.ndarray:
  """int32 [C, Lt]: candidate replies (`"@ heat (1995) @"`) tokenized as
  targets (`tokenize_texts`, through the model's feature converter)."""
  rows = [{"inputs": [EOS_ID], "targets": t}
          for t in model_inputs.tokenize_texts(
              model.output_vocabulary, candidates, targets_length)]
  return model_inputs.model_features(
      rows, {"inputs": 1, "targets": targets_length},
      model_inputs.feature_converter_cls(model))["decoder_target_tokens"]


def score_candidates(
    model: Any,
    params: PyTree,
    encoder_rows: np.ndarray,
    candidates: np.ndarray,
    *,
    batch_size: int = 16,
    desc: str = "rank",
    progress: bool = True,
) -> np.ndarray:
  """log p(candidate | encoder row) of every pair, float32 [U, C].

  Calls `model.score_candidates(params, [b, Lin], [C, Lt])` on consecutive
  batches of `batch_size` rows (a last partial batch is padded to a power of
  two, so few shapes compile); the model chunks the candidates. This is the
  slow pass of an evaluation: the tqdm bar counts rows, with rows/s and an
  ETA.

  Args:
    model: an `EncoderDecoderModel` (or the same API).
    params: its parameters.
    encoder_rows: int32 [U, Lin] (`model_features` `encoder_input_tokens`).
    candidates: int32 [C, Lt] (`candidate_tokens`).
    batch_size: rows per call.
    desc: progress bar label.
    progress: show the bar.

  Returns:
    float32 [U, C].
  """
  encoder_rows = np.asarray(encoder_rows)
  out = [np.zeros((0, len(candidates)), np.float32)]
  with tqdm.tqdm(total=len(encoder_rows), desc=desc, unit="row",
                 disable=not progress or not len(encoder_rows)) as bar:
    for start in range(0, len(encoder_rows), batch_size):
      rows = encoder_rows[start:start + batch_size]
      n = len(rows)
      width = min(batch_size, 1 << (n - 1).bit_length())
      if n < width:
        rows = np.concatenate([rows, np.repeat(rows[-1:], width - n, 0)])
      scores = model.score_candidates(params, rows, candidates)
      out.append(np.asarray(scores, np.float32)[:n])
      bar.update(n)
  return np.concatenate(out)


class CandidateScorer:
  """`scorer(examples, candidates) -> float32 [B, C]`: `score_candidates` on
  the examples' encoder rows (their `model_features` rows, i.e. the Task's
  own `inputs` tokens, as generation sees them) and the candidate replies'
  `candidate_tokens`. Stateless; a convenience for benches and scripts
  (`eval.evaluation` builds the rows and the candidates once itself).
  """

  def __init__(self, model: Any, params: PyTree, *,
               task_feature_lengths: Mapping[str, int], batch_size: int = 16,
               progress: bool = False):
    self.model, self.params = model, params
    self.lengths = dict(task_feature_lengths)
    self.batch_size = batch_size
    self.progress = progress

  def __call__(self, examples: Sequence[Mapping[str, Any]],
               candidates: Sequence[str]) -> np.ndarray:
    if not examples:
      return np.zeros((0, len(candidates)), np.float32)
    rows = _features(self.model, examples,
                     self.lengths)["encoder_input_tokens"]
    return score_candidates(
        self.model, self.params, rows,
        candidate_tokens(self.model, candidates, self.lengths["targets"]),
        batch_size=self.batch_size, progress=self.progress)


def _features(model: Any, examples: Sequence[Mapping[str, Any]],
              lengths: Mapping[str, int]) -> model_inputs.Batch:
  return model_inputs.model_features(
      examples, lengths, model_inputs.feature_converter_cls(model))


def _num_rows(features: model_inputs.Batch) -> int:
  return len(next(iter(features.values()))) if features else 0


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
    row[key] = postprocessors.to_python(value)
  return row
