"""Greedy, sampling and beam search on a bigram model with a known answer.

The "model" is a fixed table: logits of the next token depend only on the
previous token, so the most likely sequence can be found by brute force.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import decoding

VOCAB, EOS = 5, 1


def _table(seed):
  rng = np.random.RandomState(seed)
  return jnp.asarray(rng.normal(0, 2.0, (VOCAB, VOCAB)), jnp.float32)


def _step(table):
  # The cache counts calls, like a KV cache's index, to check it is threaded
  # through (and gathered per beam).
  def tokens_to_logits(tokens, cache):
    return table[tokens[:, 0]], {"calls": cache["calls"] + 1}
  return tokens_to_logits


def _log_prob(table, seq):
  """log p(seq) with EOS ending it (tokens after EOS ignored)."""
  lp = jax.nn.log_softmax(np.asarray(table), axis=-1)
  total, prev = 0.0, 0
  for tok in seq:
    total += float(lp[prev, tok])
    if tok == EOS:
      break
    prev = tok
  return total


def _canonical(seq):
  seq = list(seq)
  if EOS in seq:
    i = seq.index(EOS)
    seq = seq[: i + 1] + [0] * (len(seq) - i - 1)
  return tuple(seq)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_follows_argmax_and_stops_at_eos(seed):
  table = _table(seed)
  tokens, scores = decoding.temperature_sample(
      {"calls": jnp.zeros((2,))}, _step(table), batch_size=2,
      max_decode_length=6, eos_id=EOS, temperature=0.0)
  expected, prev = [], 0
  for _ in range(6):
    prev = int(np.argmax(table[prev]))
    expected.append(prev)
    if prev == EOS:
      break
  expected += [0] * (6 - len(expected))
  np.testing.assert_array_equal(tokens[0], expected)
  np.testing.assert_array_equal(tokens[1], expected)
  assert float(scores[0]) == pytest.approx(_log_prob(table, expected),
                                           rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_wide_beam_finds_the_most_likely_sequence(seed):
  # With num_beams >= VOCAB ** (length - 1) no hypothesis is ever pruned, so
  # beam search (alpha 0) must return the brute-force optimum.
  table, length = _table(seed), 3
  best = max((_canonical(s) for s in itertools.product(range(VOCAB),
                                                       repeat=length)),
             key=lambda s: _log_prob(table, s))
  beams = VOCAB ** (length - 1)
  tokens, scores = decoding.beam_search(
      {"calls": jnp.zeros((beams,))}, _step(table), batch_size=1,
      num_beams=beams, max_decode_length=length, eos_id=EOS, alpha=0.0)
  assert tuple(np.asarray(tokens[0])) == best
  assert float(scores[0]) == pytest.approx(_log_prob(table, best), rel=1e-5)


def test_one_beam_is_greedy():
  table = _table(5)
  greedy, _ = decoding.temperature_sample(
      {"calls": jnp.zeros((1,))}, _step(table), batch_size=1,
      max_decode_length=5, eos_id=EOS, temperature=0.0)
  beam, _ = decoding.beam_search(
      {"calls": jnp.zeros((1,))}, _step(table), batch_size=1, num_beams=1,
      max_decode_length=5, eos_id=EOS, alpha=0.0)
  np.testing.assert_array_equal(greedy, beam)


def test_sampling_follows_the_temperature():
  # From token 0: logits (0, 0, ln 3, -inf...) -> p = (1/5, 1/5, 3/5) at T=1;
  # at T=0.5 the odds square: (1/11, 1/11, 9/11).
  logits = jnp.full((VOCAB, VOCAB), -1e9).at[:, :3].set(
      jnp.array([0.0, 0.0, np.log(3.0)]))
  n = 4000
  for temperature, p2 in ((1.0, 3 / 5), (0.5, 9 / 11)):
    tokens, _ = decoding.temperature_sample(
        {"calls": jnp.zeros((n,))}, _step(logits), batch_size=n,
        max_decode_length=1, eos_id=EOS, temperature=temperature,
        rng=jax.random.PRNGKey(0))
    freq = float(np.mean(np.asarray(tokens[:, 0]) == 2))
    assert abs(freq - p2) < 0.03, (temperature, freq)
  # top-k 1 is greedy.
  tokens, _ = decoding.temperature_sample(
      {"calls": jnp.zeros((50,))}, _step(logits), batch_size=50,
      max_decode_length=1, eos_id=EOS, temperature=1.0, topk=1,
      rng=jax.random.PRNGKey(1))
  assert set(np.asarray(tokens[:, 0]).tolist()) == {2}
