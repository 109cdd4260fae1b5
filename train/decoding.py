"""Autoregressive decoding with a KV cache: greedy, sampling, beam search.

All decoders take `tokens_to_logits(tokens [n, 1], cache) -> (logits [n,
vocab], new_cache)`, the model's one-step decoder, and run inside one
`jax.lax.while_loop` that stops when every row has produced EOS or the
length is reached. The decoder starts from token 0 (T5's
`decoder_start_token_id`), which is not part of the output. Positions after
EOS are 0 (padding).
"""

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any
TokensToLogits = Callable[[Array, PyTree], tuple[Array, PyTree]]

_NEG = -1.0e9

# The decoding methods `models.EncoderDecoderModel.predict_batch` runs: the
# one list that `inference.DecodeConfig` and the chat's flag check against.
DECODE_METHODS = ("greedy", "beam", "sample")


def temperature_sample(
    cache: PyTree,
    tokens_to_logits: TokensToLogits,
    *,
    batch_size: int,
    max_decode_length: int,
    eos_id: int,
    temperature: float = 1.0,
    topk: int = 0,
    rng: Optional[Array] = None,
) -> tuple[Array, Array]:
  """Samples from softmax(logits / temperature); temperature 0 is greedy.

  Args:
    cache: initial decoder cache for `batch_size` rows.
    tokens_to_logits: one-step decoder.
    batch_size: rows.
    max_decode_length: tokens to produce at most.
    eos_id: end-of-sequence id.
    temperature: 0 for argmax, else the softmax temperature.
    topk: when > 0, sample among the k most likely tokens only.
    rng: PRNG key (unused when greedy).

  Returns:
    `(tokens int32 [batch, max_decode_length], log_probs float32 [batch])`,
    the second the sum of the chosen tokens' log-probabilities (under the
    untempered model), up to and including EOS.
  """
  if rng is None:
    rng = jax.random.PRNGKey(0)
  tokens = jnp.zeros((batch_size, max_decode_length + 1), jnp.int32)

  def cond(state):
    i, _, _, done, _, _ = state
    return (i < max_decode_length) & ~jnp.all(done)

  def body(state):
    i, tokens, cache, done, scores, rng = state
    rng, step_rng = jax.random.split(rng)
    last = jax.lax.dynamic_slice_in_dim(tokens, i, 1, axis=1)
    logits, cache = tokens_to_logits(last, cache)
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits)
    if temperature == 0:
      nxt = jnp.argmax(logits, axis=-1)
    else:
      scaled = logits / temperature
      if topk:
        kth = jax.lax.top_k(scaled, topk)[0][:, -1:]
        scaled = jnp.where(scaled < kth, _NEG, scaled)
      nxt = jax.random.categorical(step_rng, scaled, axis=-1)
    nxt = nxt.astype(jnp.int32)
    step_lp = jnp.take_along_axis(log_probs, nxt[:, None], axis=-1)[:, 0]
    scores = scores + jnp.where(done, 0.0, step_lp)
    nxt = jnp.where(done, 0, nxt)
    tokens = jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], i + 1,
                                                 axis=1)
    done = done | (nxt == eos_id)
    return i + 1, tokens, cache, done, scores, rng

  state = (jnp.array(0), tokens, cache, jnp.zeros((batch_size,), bool),
           jnp.zeros((batch_size,), jnp.float32), rng)
  _, tokens, _, _, scores, _ = jax.lax.while_loop(cond, body, state)
  return tokens[:, 1:], scores


def brevity_penalty(alpha: float, length: Array) -> Array:
  """GNMT length penalty ((5 + length) / 6) ** alpha (t5x's default 0.6)."""
  return jnp.power((5.0 + length.astype(jnp.float32)) / 6.0, alpha)


def beam_search(
    cache: PyTree,
    tokens_to_logits: TokensToLogits,
    *,
    batch_size: int,
    num_beams: int,
    max_decode_length: int,
    eos_id: int,
    alpha: float = 0.6,
) -> tuple[Array, Array]:
  """Beam search over `num_beams` hypotheses per row.

  The cache holds `batch_size * num_beams` rows (row `b * num_beams + k` is
  beam k of example b; see `tile_for_beams`). Hypotheses compete on their
  log-probability; a finished one (EOS produced) is kept with its score and
  extended only by padding. The final choice among the beams divides by
  `brevity_penalty(alpha, length)`; with alpha 0 the result is the most
  likely sequence the beam found.

  Args:
    cache: decoder cache for `batch_size * num_beams` rows.
    tokens_to_logits: one-step decoder.
    batch_size: examples.
    num_beams: beams per example (at most the vocabulary size).
    max_decode_length: tokens to produce at most.
    eos_id: end-of-sequence id.
    alpha: length-penalty exponent for the final choice.

  Returns:
    `(tokens int32 [batch, max_decode_length], log_probs float32 [batch])`
    of the best beam.
  """
  b, k = batch_size, num_beams
  seqs = jnp.zeros((b, k, max_decode_length + 1), jnp.int32)
  # Only beam 0 is live at the start, so the first step picks k distinct
  # tokens instead of k copies of the best one.
  scores = jnp.tile(jnp.array([0.0] + [_NEG] * (k - 1), jnp.float32), (b, 1))
  finished = jnp.zeros((b, k), bool)

  def cond(state):
    i, _, _, finished, _ = state
    return (i < max_decode_length) & ~jnp.all(finished)

  def body(state):
    i, seqs, scores, finished, cache = state
    last = jax.lax.dynamic_slice_in_dim(seqs, i, 1, axis=2).reshape(b * k, 1)
    logits, cache = tokens_to_logits(last, cache)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
    vocab = log_probs.shape[-1]
    log_probs = log_probs.reshape(b, k, vocab)
    # A finished beam can only be extended by padding, at no cost.
    pad_only = jnp.full((vocab,), _NEG).at[0].set(0.0)
    log_probs = jnp.where(finished[..., None], pad_only, log_probs)
    candidates = (scores[..., None] + log_probs).reshape(b, k * vocab)
    scores, flat = jax.lax.top_k(candidates, k)
    parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
    seqs = jnp.take_along_axis(seqs, parent[..., None], axis=1)
    seqs = jax.lax.dynamic_update_slice_in_dim(seqs, token[..., None], i + 1,
                                               axis=2)
    finished = jnp.take_along_axis(finished, parent, axis=1) | (
        token == eos_id)
    rows = (jnp.arange(b)[:, None] * k + parent).reshape(-1)
    cache = jax.tree.map(
        lambda x: x[rows] if x.ndim and x.shape[0] == b * k else x, cache)
    return i + 1, seqs, scores, finished, cache

  state = (jnp.array(0), seqs, scores, finished, cache)
  _, seqs, scores, finished, _ = jax.lax.while_loop(cond, body, state)
  seqs = seqs[:, :, 1:]
  lengths = jnp.sum(seqs > 0, axis=-1)
  ranked = scores / brevity_penalty(alpha, lengths)
  best = jnp.argmax(ranked, axis=1)
  tokens = jnp.take_along_axis(seqs, best[:, None, None], axis=1)[:, 0]
  return tokens, jnp.take_along_axis(scores, best[:, None], axis=1)[:, 0]


def tile_for_beams(x: Array, num_beams: int) -> Array:
  """[batch, ...] -> [batch * num_beams, ...], each row repeated."""
  return jnp.repeat(x, num_beams, axis=0)
