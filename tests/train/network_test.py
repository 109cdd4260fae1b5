"""Tests for train/network.py: the masks, the logits and the rank checks.

The reference for each mask is the same network on an input where the mask
has nothing to hide (the example alone, unpadded, or with the later tokens
unchanged); the logits are checked against the decoder's final activations
multiplied out in numpy. Parameters come from an init, but no expected value
depends on them.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import network


def _init(config):
  model = network.Transformer(config)
  variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 5), jnp.int32),
                         jnp.ones((1, 5), jnp.int32), enable_dropout=False)
  return model, nn.meta.unbox(variables["params"])


@pytest.fixture(name="t5", scope="module")
def _t5(tiny_t5_config):
  return _init(tiny_t5_config())


def _logits(t5, encoder, decoder_inputs, targets, **kw):
  model, params = t5
  return np.asarray(model.apply(
      {"params": params}, jnp.array(encoder), jnp.array(decoder_inputs),
      jnp.array(targets), enable_dropout=False, **kw))


# Two examples: encoder inputs, decoder inputs (shifted targets), targets.
EX1 = ([[3, 4, 5]], [[0, 6, 7]], [[6, 7, 1]])
EX2 = ([[8, 9]], [[0, 10]], [[10, 1]])


def test_logits_have_shape_batch_length_vocab(t5):
  assert _logits(t5, *EX1).shape == (1, 3, 32)  # vocab_size 32


def test_padding_changes_nothing_at_the_real_positions(t5):
  alone = _logits(t5, *EX1)
  padded = _logits(t5, [[3, 4, 5, 0, 0]], [[0, 6, 7, 0]], [[6, 7, 1, 0]])
  np.testing.assert_allclose(padded[:, :3], alone, rtol=1e-5, atol=1e-5)


def test_packed_examples_give_the_logits_of_each_example_alone(t5):
  packed = _logits(
      t5, [[3, 4, 5, 8, 9]], [[0, 6, 7, 0, 10]], [[6, 7, 1, 10, 1]],
      encoder_segment_ids=jnp.array([[1, 1, 1, 2, 2]]),
      decoder_segment_ids=jnp.array([[1, 1, 1, 2, 2]]))
  np.testing.assert_allclose(packed[:, :3], _logits(t5, *EX1), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(packed[:, 3:], _logits(t5, *EX2), rtol=1e-5,
                             atol=1e-5)


def test_decoder_is_causal(t5):
  before = _logits(t5, *EX1)
  after = _logits(t5, [[3, 4, 5]], [[0, 6, 12]], [[6, 12, 1]])
  # Changing the token at position 2 leaves positions 0 and 1 as they were.
  np.testing.assert_allclose(after[:, :2], before[:, :2], rtol=1e-5,
                             atol=1e-5)
  assert not np.allclose(after[:, 2], before[:, 2])


def _final_activations_and_logits(config):
  model, params = _init(config)
  logits, state = model.apply(
      {"params": params}, jnp.array(EX1[0]), jnp.array(EX1[1]),
      jnp.array(EX1[2]), enable_dropout=False,
      capture_intermediates=lambda mdl, _: mdl.name == "decoder_norm",
      mutable=["intermediates"])
  final = state["intermediates"]["decoder"]["decoder_norm"]["__call__"][0]
  return params, np.asarray(final), np.asarray(logits)


def test_t5_1_0_logits_are_the_tied_embedding_over_sqrt_emb_dim(
    tiny_t5_config):
  params, final, logits = _final_activations_and_logits(
      tiny_t5_config(mlp_activations=("relu",), logits_via_embedding=True))
  embedding = np.asarray(params["token_embedder"]["embedding"])  # [v, e]
  assert "logits_dense" not in params["decoder"]
  np.testing.assert_allclose(logits, final @ embedding.T / np.sqrt(16.0),
                             rtol=1e-5, atol=1e-5)


def test_t5_1_1_logits_use_a_separate_unscaled_projection(tiny_t5_config):
  params, final, logits = _final_activations_and_logits(tiny_t5_config())
  kernel = np.asarray(params["decoder"]["logits_dense"]["kernel"])  # [e, v]
  np.testing.assert_allclose(logits, final @ kernel, rtol=1e-5, atol=1e-5)


def test_rank_of_the_inputs_is_checked_on_entry(t5):
  model, params = t5
  with pytest.raises(AssertionError, match=r"\(3,\)"):
    model.apply({"params": params}, jnp.array([3, 4, 5]),
                jnp.array([[0, 6, 7]]), enable_dropout=False)
  with pytest.raises(AssertionError, match=r"\(1, 1, 3\)"):
    model.apply({"params": params}, jnp.array([[3, 4, 5]]),
                jnp.array([[[0, 6, 7]]]), enable_dropout=False)


@pytest.mark.parametrize("tied", [True, False])
def test_logits_of_returned_states_are_the_decoder_logits(tiny_t5_config,
                                                          tied):
  """`decode(return_hidden=True)` then `logits` (all, or chosen ids) gives
  `decode`'s logits: what candidate scoring relies on."""
  config = tiny_t5_config(
      mlp_activations=("relu",) if tied else ("gelu", "linear"),
      logits_via_embedding=tied)
  model = network.Transformer(config)
  enc = jnp.array([[5, 6, 7, 1, 0], [8, 9, 1, 0, 0]])
  dec = jnp.array([[0, 3, 4, 1], [0, 2, 1, 0]])
  tgt = jnp.array([[3, 4, 1, 0], [2, 1, 0, 0]])
  params = model.init(jax.random.PRNGKey(0), enc, dec, tgt,
                      enable_dropout=False)["params"]
  encoded = model.apply({"params": params}, enc, enable_dropout=False,
                        method=model.encode)
  logits = model.apply({"params": params}, encoded, enc, dec, tgt,
                       enable_dropout=False, method=model.decode)
  hidden = model.apply({"params": params}, encoded, enc, dec, tgt,
                       enable_dropout=False, return_hidden=True,
                       method=model.decode)
  assert hidden.shape == (2, 4, config.emb_dim)
  np.testing.assert_allclose(
      model.apply({"params": params}, hidden, method=model.logits), logits,
      rtol=1e-6, atol=1e-6)
  ids = jnp.stack([tgt, jnp.full_like(tgt, 7)], axis=-1)  # [2, 4, 2]
  np.testing.assert_allclose(
      model.apply({"params": params}, hidden, ids, method=model.logits),
      np.take_along_axis(np.asarray(logits), np.asarray(ids), axis=-1),
      rtol=1e-5, atol=1e-5)
