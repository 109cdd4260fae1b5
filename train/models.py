"""The model wrapper: loss, scoring and decoding around `network.Transformer`.

The network returns logits only; this module owns everything that turns
logits into a training signal or an output, t5x style (`t5x/models.py`):

  loss_fn            weighted cross-entropy + z-loss, label smoothing
  score_batch        sum of target-token log-likelihoods (t5x `score_batch`)
  score_candidates   contexts x candidate replies -> log-likelihoods, each
                     context encoded once (ranking evaluation, probes)
  predict_batch      greedy / beam / temperature sampling with a KV cache

Batches carry seqio `EncDecFeatureConverter` features.
"""

import dataclasses
import functools
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import seqio

from train import decoding
from train import losses

Array = jax.Array
PyTree = Any
Batch = Mapping[str, Array]

# Decoder states per logsumexp call in `score_candidates`: [256, vocab]
# float32 logits (33 MB for T5's 32,128) ran fastest on this project's
# CPU (`bench/ranking_eval.py`); 512 and more were ~2x slower.
PREFIX_BLOCK_ROWS = 256


class EncoderDecoderModel:
  """A T5 encoder-decoder with t5x's model API.

  Attributes:
    module: the Flax network (`network.Transformer`).
    input_vocabulary / output_vocabulary: seqio vocabularies.
    FEATURE_CONVERTER_CLS: `seqio.EncDecFeatureConverter`.
  """

  FEATURE_CONVERTER_CLS = seqio.EncDecFeatureConverter

  def __init__(self, module: nn.Module, input_vocabulary: Any,
               output_vocabulary: Any, *, z_loss: float = 1e-4,
               label_smoothing: float = 0.0,
               loss_normalizing_factor: Optional[float] = None,
               candidate_batch_size: int = 128):
    """Wraps `module`.

    Args:
      module: `network.Transformer`.
      input_vocabulary: vocabulary of the inputs.
      output_vocabulary: vocabulary of the targets (its `eos_id` ends
        decoding).
      z_loss: coefficient of the log(Z)^2 auxiliary loss.
      label_smoothing: label-smoothing mass.
      loss_normalizing_factor: None sums the token losses (t5x); a float
        divides the sum by it.
      candidate_batch_size: decoder rows per call in `score_candidates`
        (contexts x candidates), which bounds its memory.
    """
    self.module = module
    self.input_vocabulary = input_vocabulary
    self.output_vocabulary = output_vocabulary
    self.z_loss = z_loss
    self.label_smoothing = label_smoothing
    self.loss_normalizing_factor = loss_normalizing_factor
    self.candidate_batch_size = candidate_batch_size

  # ------------------------------ Training ---------------------------------

  def get_initial_variables(self, rng: Array, input_shapes: Mapping[str, Any],
                            input_types: Optional[Mapping[str, Any]] = None
                           ) -> PyTree:
    """Initial variables (params boxed with logical axis names)."""
    del input_types
    enc = jnp.ones(input_shapes["encoder_input_tokens"], jnp.int32)
    dec = jnp.ones(input_shapes["decoder_input_tokens"], jnp.int32)
    return self.module.init(rng, enc, dec, dec, enable_dropout=False)

  def _logits(self, params: PyTree, batch: Batch,
              dropout_rng: Optional[Array] = None) -> Array:
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    return self.module.apply(
        {"params": params},
        batch["encoder_input_tokens"],
        batch["decoder_input_tokens"],
        batch["decoder_target_tokens"],
        encoder_segment_ids=batch.get("encoder_segment_ids"),
        decoder_segment_ids=batch.get("decoder_segment_ids"),
        enable_dropout=rngs is not None,
        rngs=rngs)

  def loss_fn(self, params: PyTree, batch: Batch,
              dropout_rng: Optional[Array]) -> tuple[Array, dict[str, Array]]:
    """`(loss, metrics)`; dropout is on iff `dropout_rng` is given.

    Metrics: `z_loss`, `cross_ent_loss` (sums, like the loss) and
    `accuracy` (token accuracy over weighted target tokens).
    """
    logits = self._logits(params, batch, dropout_rng)
    targets = batch["decoder_target_tokens"]
    weights = batch.get("decoder_loss_weights")
    if weights is None:
      weights = (targets > 0).astype(jnp.float32)
    loss, z_loss, weight_sum = losses.compute_weighted_cross_entropy(
        logits, targets, weights, label_smoothing=self.label_smoothing,
        z_loss=self.z_loss,
        loss_normalizing_factor=self.loss_normalizing_factor)
    # The label has the top logit (ties count as correct): one max, which
    # XLA shares with the loss's logsumexp, instead of an argmax pass.
    label_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)
    correct = (label_logit[..., 0] >= jnp.max(logits, axis=-1)).astype(
        jnp.float32)
    accuracy = jnp.sum(correct * weights) / jnp.maximum(weight_sum, 1.0)
    return loss, {"z_loss": z_loss, "cross_ent_loss": loss - z_loss,
                  "accuracy": accuracy}

  # ------------------------------- Scoring ---------------------------------

  def score_batch(self, params: PyTree, batch: Batch) -> Array:
    """Sum of log p(target token) per example, float32 [batch].

    Tokens with `decoder_loss_weights` 0 (or target 0 when there are no
    weights) do not count.
    """
    return _score_batch(self.module, params, dict(batch))

  def score_candidates(self, params: PyTree, encoder_input_tokens: Array,
                       candidate_tokens: Array) -> Array:
    """log p(candidate | context) for every pair, float32 [B, C].

    Each context is encoded once, and each distinct decoder prefix of the
    candidates is projected onto the vocabulary once (`CandidatePrefixes`):
    the 32k-way log-softmax is the cost, and candidate replies share most
    of their prefixes (`@ the ...`). Two passes:

    1. the decoder stack over the candidates, sorted by length, in chunks
       of `candidate_batch_size // B` per context (at least 1), each cut to
       its longest candidate (rounded up to a multiple of 8): the target
       tokens' logits (one dot product each) and the final states of the
       prefixes first seen in the chunk;
    2. logsumexp over the vocabulary of each distinct prefix's state, in
       blocks of `PREFIX_BLOCK_ROWS` (contexts x prefixes) states.

    log p(candidate) = sum of target logits - sum of its prefixes'
    logsumexps: the same value as a full log-softmax at every position.

    Args:
      params: model parameters.
      encoder_input_tokens: int32 [B, Lin] (0-padded, EOS included).
      candidate_tokens: int32 [C, Lt] (0-padded, EOS included).

    Returns:
      float32 [B, C] summed log-probabilities of the candidates' tokens.
    """
    enc = jnp.asarray(encoder_input_tokens, jnp.int32)
    cand = np.asarray(candidate_tokens, np.int32)
    num, max_len = cand.shape
    batch = enc.shape[0]
    prefixes = candidate_prefixes(cand)
    chunk = max(1, min(num, self.candidate_batch_size // batch))
    encoded = _encode(self.module, params, enc)
    target_sums = np.zeros((batch, num), np.float32)
    states = None  # [B, P, e]: the final decoder state of each prefix.
    for start in range(0, num, chunk):
      idx = prefixes.order[start:start + chunk]
      width = min(max_len, max(8, -(-int(prefixes.lengths[idx].max()) // 8)
                               * 8))
      block = np.zeros((chunk, width), np.int32)
      block[: len(idx)] = cand[idx, :width]
      sums, hidden = _candidate_states(self.module, params, encoded, enc,
                                       jnp.asarray(block))
      target_sums[:, idx] = np.asarray(sums)[:, : len(idx)]
      owned = prefixes.owner_chunk(start // chunk, chunk)
      if len(owned):
        rows = prefixes.first_row[owned] - start
        flat = rows * width + prefixes.depth[owned]
        hidden = np.asarray(hidden).reshape(batch, chunk * width, -1)
        if states is None:
          states = np.zeros((batch, prefixes.num_prefixes, hidden.shape[-1]),
                            hidden.dtype)
        states[:, owned] = hidden[:, flat]
    lse = np.zeros((batch, prefixes.num_prefixes), np.float64)
    block_rows = max(1, PREFIX_BLOCK_ROWS // batch)
    for start in range(0, prefixes.num_prefixes, block_rows):
      part = states[:, start:start + block_rows]
      n = part.shape[1]
      if n < block_rows:
        part = np.pad(part, ((0, 0), (0, block_rows - n), (0, 0)))
      lse[:, start:start + n] = np.asarray(
          _prefix_logsumexp(self.module, params, jnp.asarray(part)))[:, :n]
    valid = prefixes.ids >= 0  # [C, Lt]
    lse_sums = np.sum(lse[:, np.maximum(prefixes.ids, 0)] * valid,
                      axis=-1)  # [B, C]
    return (target_sums - lse_sums).astype(np.float32)

  # ------------------------------ Decoding ---------------------------------

  def predict_batch(self, params: PyTree, batch: Batch, *,
                    decode_method: str = "greedy", num_beams: int = 4,
                    temperature: float = 1.0,
                    max_decode_length: Optional[int] = None,
                    rng: Optional[Array] = None, alpha: float = 0.6,
                    topk: int = 0, return_scores: bool = False):
    """Decodes the targets of `batch["encoder_input_tokens"]`.

    Args:
      params: model parameters.
      batch: needs `encoder_input_tokens`; `decoder_input_tokens` gives the
        default length.
      decode_method: "greedy", "beam" or "sample".
      num_beams: beams for "beam".
      temperature: for "sample".
      max_decode_length: tokens to decode (default: the batch's target
        length).
      rng: PRNG key for "sample".
      alpha: beam length-penalty exponent.
      topk: top-k restriction for "sample" (0: none).
      return_scores: also return the log-probabilities of the outputs.

    Returns:
      int32 [batch, max_decode_length] tokens (0 after EOS), and float32
      [batch] log-probabilities when `return_scores`.
    """
    if decode_method not in decoding.DECODE_METHODS:
      methods = ", ".join(map(repr, decoding.DECODE_METHODS))
      raise ValueError(f"unknown decode_method {decode_method!r}; use one "
                       f"of {methods}")
    if max_decode_length is None:
      if "decoder_input_tokens" not in batch:
        raise ValueError("predict_batch needs max_decode_length or "
                         "batch['decoder_input_tokens']")
      max_decode_length = batch["decoder_input_tokens"].shape[1]
    enc = jnp.asarray(batch["encoder_input_tokens"], jnp.int32)
    if decode_method == "beam":
      tokens, scores = _beam_decode(
          self.module, params, enc, int(max_decode_length), int(num_beams),
          float(alpha), int(self.output_vocabulary.eos_id))
    else:
      tokens, scores = _sample_decode(
          self.module, params, enc, int(max_decode_length),
          0.0 if decode_method == "greedy" else float(temperature), int(topk),
          int(self.output_vocabulary.eos_id),
          rng if rng is not None else jax.random.PRNGKey(0))
    return (tokens, scores) if return_scores else tokens


# ---------------------------------------------------------------------------
# Candidate prefixes (numpy, once per candidate list).
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CandidatePrefixes:
  """The distinct decoder prefixes of candidate replies: a prefix trie,
  flattened level by level.

  The logits at target position t of a candidate depend only on its tokens
  before t (and the context), so positions with equal prefixes share them.
  Over the 6,916 ReDial candidates: 63,940 target positions, 39,287
  distinct prefixes.

  Attributes:
    ids: int32 [C, Lt]: the prefix id before each target token (-1 at
      padding). Prefix 0 is the empty one (position 0 of every candidate).
    num_prefixes: P, the number of distinct prefixes.
    depth: int [P]: each prefix's length (its target position).
    lengths: int [C]: target tokens per candidate.
    order: int [C]: candidates sorted by length (stable), the order
      `score_candidates` runs them in.
    first_row: int [P]: the position in `order` of the first candidate
      that has each prefix.
  """

  ids: np.ndarray
  num_prefixes: int
  depth: np.ndarray
  lengths: np.ndarray
  order: np.ndarray
  first_row: np.ndarray

  @functools.cached_property
  def _by_first_row(self) -> tuple[np.ndarray, np.ndarray]:
    """The prefix ids sorted by `first_row`, and their `first_row`s."""
    ids = np.argsort(self.first_row, kind="stable")
    return ids, self.first_row[ids]

  def owner_chunk(self, k: int, chunk: int) -> np.ndarray:
    """The prefixes first seen in rows `k * chunk ...` of `order`, in
    increasing id (two binary searches, not a scan of all P)."""
    ids, rows = self._by_first_row
    lo, hi = np.searchsorted(rows, [k * chunk, (k + 1) * chunk])
    return np.sort(ids[lo:hi])


def candidate_prefixes(candidate_tokens: np.ndarray) -> CandidatePrefixes:
  """The `CandidatePrefixes` of int [C, Lt] candidates (0-padded).

  A candidate's positions are its tokens up to the first padding 0.
  """
  cand = np.asarray(candidate_tokens, np.int64)
  num, max_len = cand.shape
  valid = np.cumprod(cand > 0, axis=1).astype(bool)
  ids = np.full((num, max_len), -1, np.int64)
  if max_len:
    ids[valid[:, 0], 0] = 0
  node = np.zeros(num, np.int64)  # the prefix cand[:, :t]
  depth = [0]
  next_id = 1
  base = int(cand.max(initial=0)) + 1
  for t in range(1, max_len):
    rows = valid[:, t]
    if not rows.any():
      break
    _, inverse = np.unique(node[rows] * base + cand[rows, t - 1],
                           return_inverse=True)
    node[rows] = next_id + inverse.reshape(-1)
    ids[rows, t] = node[rows]
    new = int(inverse.max()) + 1
    depth += [t] * new
    next_id += new
  lengths = valid.sum(axis=1)
  order = np.argsort(lengths, kind="stable")
  position = np.empty(num, np.int64)
  position[order] = np.arange(num)
  first_row = np.full(next_id, num, np.int64)
  rows_of = np.broadcast_to(position[:, None], ids.shape)
  np.minimum.at(first_row, ids[valid], rows_of[valid])
  if not valid.any():
    next_id, first_row = 0, first_row[:0]
  return CandidatePrefixes(ids=ids.astype(np.int32), num_prefixes=next_id,
                           depth=np.asarray(depth[:next_id], np.int64),
                           lengths=lengths, order=order, first_row=first_row)


# ---------------------------------------------------------------------------
# Compiled functions (module is static: flax modules hash by their config).
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _score_batch(module, params, batch):
  if "decoder_segment_ids" in batch:
    raise ValueError("score_batch takes unpacked batches (one example per "
                     "row); packed rows would mix examples' scores")
  logits = module.apply(
      {"params": params}, batch["encoder_input_tokens"],
      batch["decoder_input_tokens"], batch["decoder_target_tokens"],
      encoder_segment_ids=batch.get("encoder_segment_ids"),
      decoder_segment_ids=batch.get("decoder_segment_ids"),
      enable_dropout=False)
  targets = batch["decoder_target_tokens"]
  weights = batch.get("decoder_loss_weights")
  if weights is None:
    weights = targets > 0
  token_lp = jnp.take_along_axis(jax.nn.log_softmax(logits),
                                 targets[..., None], axis=-1)[..., 0]
  return jnp.sum(token_lp * weights, axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def _encode(module, params, enc):
  return module.apply({"params": params}, enc, enable_dropout=False,
                      method=module.encode)


@functools.partial(jax.jit, static_argnums=0)
def _candidate_states(module, params, encoded, enc, cand):
  """[B] contexts x [c] candidates [c, w] -> the summed target logits
  [B, c] and the final decoder states [B, c, w, e]."""
  b, c = enc.shape[0], cand.shape[0]
  targets = jnp.tile(cand, (b, 1))  # row i*c + j: context i, candidate j
  inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))
  # `encoded` keeps one row per context: cross-attention folds the c
  # candidate rows of a context onto it (keys/values projected once).
  hidden = module.apply(
      {"params": params}, encoded, enc, inputs, targets,
      enable_dropout=False, rows_per_context=c, return_hidden=True,
      method=module.decode)  # [b * c, w, e]
  target_logits = module.apply({"params": params}, hidden, targets[..., None],
                               method=module.logits)[..., 0]  # [b * c, w]
  sums = jnp.sum(target_logits * (targets > 0), axis=-1).reshape(b, c)
  return sums, hidden.reshape(b, c, *hidden.shape[1:])


@functools.partial(jax.jit, static_argnums=0)
def _prefix_logsumexp(module, params, states):
  """Decoder states [B, n, e] -> logsumexp of their logits [B, n]: no
  [.., vocab] log-softmax array is kept."""
  return jax.nn.logsumexp(
      module.apply({"params": params}, states, method=module.logits), axis=-1)


def _init_cache(module, enc, max_decode_length):
  """Zero KV cache for `enc.shape[0]` rows and `max_decode_length` steps."""
  rows = enc.shape[0]
  shapes = jax.eval_shape(
      lambda: module.init(
          jax.random.PRNGKey(0), enc,
          jnp.ones((rows, max_decode_length), jnp.int32),
          jnp.ones((rows, max_decode_length), jnp.int32),
          enable_dropout=False, decode=True,
          max_decode_length=max_decode_length)["cache"])
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _step_fn(module, params, encoded, enc, max_decode_length):
  def tokens_to_logits(tokens, cache):
    logits, mutated = module.apply(
        {"params": params, "cache": cache}, encoded, enc, tokens,
        enable_dropout=False, decode=True,
        max_decode_length=max_decode_length, mutable=["cache"],
        method=module.decode)
    return logits[:, -1], mutated["cache"]
  return tokens_to_logits


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def _sample_decode(module, params, enc, max_decode_length, temperature, topk,
                   eos_id, rng):
  encoded = _encode.__wrapped__(module, params, enc)
  cache = _init_cache(module, enc, max_decode_length)
  return decoding.temperature_sample(
      cache, _step_fn(module, params, encoded, enc, max_decode_length),
      batch_size=enc.shape[0], max_decode_length=max_decode_length,
      eos_id=eos_id, temperature=temperature, topk=topk, rng=rng)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def _beam_decode(module, params, enc, max_decode_length, num_beams, alpha,
                 eos_id):
  enc = decoding.tile_for_beams(enc, num_beams)
  encoded = _encode.__wrapped__(module, params, enc)
  cache = _init_cache(module, enc, max_decode_length)
  return decoding.beam_search(
      cache, _step_fn(module, params, encoded, enc, max_decode_length),
      batch_size=enc.shape[0] // num_beams, num_beams=num_beams,
      max_decode_length=max_decode_length, eos_id=eos_id, alpha=alpha)
