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

    Each context is encoded once. Candidates are sorted by length and
    scored in chunks of `candidate_batch_size // B` (at least 1) per
    context, each chunk cut to its longest candidate (rounded up to a
    multiple of 8, so few shapes compile): the vocabulary projection at
    padding positions, most of the cost for short titles, is skipped.

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
    chunk = max(1, min(num, self.candidate_batch_size // enc.shape[0]))
    lengths = np.sum(cand > 0, axis=1)
    order = np.argsort(lengths, kind="stable")
    encoded = _encode(self.module, params, enc)
    out = np.zeros((enc.shape[0], num), np.float32)
    for start in range(0, num, chunk):
      idx = order[start:start + chunk]
      width = min(max_len, max(8, -(-int(lengths[idx].max()) // 8) * 8))
      block = np.zeros((chunk, width), np.int32)
      block[: len(idx)] = cand[idx, :width]
      scores = _score_chunk(self.module, params, encoded, enc,
                            jnp.asarray(block))
      out[:, idx] = np.asarray(scores)[:, : len(idx)]
    return out

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
    if decode_method not in ("greedy", "beam", "sample"):
      raise ValueError(f"unknown decode_method {decode_method!r}; use "
                       "'greedy', 'beam' or 'sample'")
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
def _score_chunk(module, params, encoded, enc, cand):
  """[B] contexts x [c] candidates -> [B, c] log-likelihoods."""
  b, c = enc.shape[0], cand.shape[0]
  targets = jnp.tile(cand, (b, 1))  # row i*c + j: context i, candidate j
  inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))
  # `encoded` keeps one row per context: cross-attention folds the c
  # candidate rows of a context onto it (keys/values projected once).
  logits = module.apply(
      {"params": params}, encoded, enc, inputs, targets,
      enable_dropout=False, rows_per_context=c, method=module.decode)
  # log p(target) = logit(target) - logsumexp(logits): no [.., vocab]
  # log-softmax array is materialized.
  token_lp = jnp.take_along_axis(logits, targets[..., None], axis=-1)[
      ..., 0] - jax.nn.logsumexp(logits, axis=-1)
  return jnp.sum(token_lp * (targets > 0), axis=-1).reshape(b, c)


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
