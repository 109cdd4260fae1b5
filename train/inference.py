"""Running a model over examples: decoded text and log-likelihoods.

The examples and their model features come from `train.model_inputs`, so
every caller feeds the model the Task's own tokens:

  generate / score_targets             `predict_batch` / `score_batch` over
                                       batches of `model_features` rows
                                       (tqdm bar)
  CandidateScorer                      log p(candidate reply | example) for a
                                       list of replies (`score_candidates`),
                                       cached per encoder row
  PairScorer                           log p(target | input) of text pairs
  decode_tokens                        token ids -> text (up to EOS)

Each function takes a plain list of examples and walks it in order, so a
multi-host caller can hand each process its own slice.
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
import seqio
import tqdm

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
    if self.method not in ("greedy", "beam", "sample"):
      raise ValueError("decode method must be greedy, beam or sample, got "
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
  features = model_inputs.model_features(
      examples, task_feature_lengths,
      model_inputs.feature_converter_cls(model))
  max_len = decode.max_decode_length or task_feature_lengths["targets"]
  rng = jax.random.PRNGKey(decode.seed)
  texts = []
  with tqdm.tqdm(total=len(examples), desc=desc, unit="ex",
                 disable=not progress) as bar:
    for i, (start, end, batch) in enumerate(
        model_inputs.iter_batches(features, batch_size)):
      tokens = model.predict_batch(
          params, batch, decode_method=decode.method,
          num_beams=decode.num_beams, temperature=decode.temperature,
          max_decode_length=max_len,
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
  features = model_inputs.model_features(
      examples, task_feature_lengths,
      model_inputs.feature_converter_cls(model))
  out = []
  with tqdm.tqdm(total=len(examples), desc=desc, unit="pair",
                 disable=not progress) as bar:
    for start, end, batch in model_inputs.iter_batches(features, batch_size):
      out.append(np.asarray(model.score_batch(params, batch))[: end - start])
      bar.update(end - start)
  return np.concatenate(out).astype(np.float32)


class PairScorer:
  """log p(target | input) of text pairs: `scorer(inputs, targets) -> [N]`.

  Texts are tokenized with `model_inputs.tokenize_texts` and scored by
  `score_targets`; the probes use it (`eval.probes.probe_lib.PairScoreFn`).
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
    examples = model_inputs.texts_to_examples(
        self.model.input_vocabulary, self.model.output_vocabulary, inputs,
        targets, self.lengths)
    return score_targets(self.model, self.params, examples,
                         task_feature_lengths=self.lengths,
                         batch_size=self.batch_size, desc=self.desc,
                         progress=self.progress)


class CandidateScorer:
  """log p(candidate reply | example) for every pair, float32 [B, C].

  `scorer(examples, candidates)`: each example's encoder row is its
  `model_inputs.model_features` row, i.e. the Task's own `inputs` tokens
  (for ReDial the prefix and the most recent history, as generation sees
  it); candidates are replies (`"@ heat (1995) @"`) tokenized as targets.
  Calls `model.score_candidates(params, [b, Lin], [C, Lt])` with `b` up to
  `batch_size` (a last partial batch padded to a power of two, so few
  shapes compile). Scores are cached per encoder row for the current candidate
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
      rows = [{"inputs": [EOS_ID], "targets": t}
              for t in model_inputs.tokenize_texts(
                  vocab, candidates, self.lengths["targets"])]
      self._candidate_tokens = model_inputs.model_features(
          rows, self.lengths, model_inputs.feature_converter_cls(self.model)
      )["decoder_target_tokens"]
      self._candidates, self._cache = key, {}
    return self._candidate_tokens

  def encoder_rows(self, examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """int32 [B, Lin]: the examples' encoder rows, as generation builds
    them."""
    return model_inputs.model_features(
        examples, self.lengths,
        model_inputs.feature_converter_cls(self.model)
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
