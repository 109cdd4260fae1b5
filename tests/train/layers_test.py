"""Tests for train/layers.py: each layer against a result written out here.

Parameters are set explicitly (never from an initializer), inputs are small
literals, and the expected values are either written out by hand or computed
by a numpy/einsum reference in the test, so a wrong layer cannot pass by
agreeing with itself.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from train import layers

T, F = True, False


# ------------------------------- Masks --------------------------------------


def test_padding_mask_hides_padded_queries_and_keys():
  valid = jnp.array([[T, T, F]])
  mask = layers.make_attention_mask(valid, valid)
  assert mask.shape == (1, 1, 3, 3)
  np.testing.assert_array_equal(mask[0, 0], [
      [T, T, F],
      [T, T, F],
      [F, F, F],
  ])


def test_causal_mask_is_lower_triangular():
  np.testing.assert_array_equal(layers.make_causal_mask(3), [[[
      [T, F, F],
      [T, T, F],
      [T, T, T],
  ]]])


def test_segment_mask_keeps_packed_examples_apart():
  segments = jnp.array([[1, 1, 2, 2, 0]])  # two examples, then padding
  np.testing.assert_array_equal(
      layers.make_segment_mask(segments, segments)[0, 0], [
          [T, T, F, F, F],
          [T, T, F, F, F],
          [F, F, T, T, F],
          [F, F, T, T, F],
          [F, F, F, F, T],
      ])


def test_mask_to_bias_is_zero_or_large_negative():
  np.testing.assert_array_equal(
      layers.mask_to_bias(jnp.array([T, F])), [0.0, layers.NEG_INF])


# ----------------------------- Attention ------------------------------------

# One row of 4 positions, emb 2, 2 heads of size 2.
X = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]]], np.float32)
W_Q = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]],
               np.float32)  # [embed, heads, kv]
W_K = np.array([[[0.5, 0.0], [1.0, 0.0]], [[0.0, 0.5], [0.0, 1.0]]],
               np.float32)
W_V = np.array([[[1.0, 2.0], [0.0, 1.0]], [[3.0, 0.0], [1.0, 1.0]]],
               np.float32)
W_O = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, -1.0]],
               np.float32)  # [heads * kv, embed]

# The three masks the network builds, written out for 4 positions.
CAUSAL = [[T, F, F, F], [T, T, F, F], [T, T, T, F], [T, T, T, T]]
PADDING = [[T, T, T, F]] * 3 + [[F, F, F, F]]  # last position is padding
PACKED = [[T, T, F, F], [T, T, F, F], [F, F, T, T], [F, F, T, T]]


def _reference_attention(x, mask):
  """softmax(q k^T masked) v, projected back: numpy einsum, no scaling."""
  q = np.einsum("bte,ehd->bthd", x, W_Q)
  k = np.einsum("bte,ehd->bthd", x, W_K)
  v = np.einsum("bte,ehd->bthd", x, W_V)
  logits = np.einsum("bqhd,bkhd->bhqk", q, k)
  logits = np.where(np.asarray(mask)[None, None], logits, layers.NEG_INF)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  out = np.einsum("bhqk,bkhd->bqhd", weights, v)
  return out.reshape(out.shape[:2] + (-1,)) @ W_O


def _attention(x, mask):
  module = layers.MultiHeadDotProductAttention(num_heads=2, head_dim=2)
  params = {"query": {"kernel": W_Q}, "key": {"kernel": W_K},
            "value": {"kernel": W_V}, "out": {"kernel": W_O}}
  bias = layers.mask_to_bias(jnp.asarray(mask)[None, None])
  return np.asarray(module.apply({"params": params}, x, x, bias))


@pytest.mark.parametrize("mask", [CAUSAL, PADDING, PACKED],
                         ids=["causal", "padding", "packed"])
def test_attention_matches_einsum_reference(mask):
  np.testing.assert_allclose(_attention(X, mask),
                             _reference_attention(X, mask), rtol=1e-5,
                             atol=1e-6)


def test_a_position_that_sees_only_itself_returns_its_value():
  # Under the causal mask position 0 attends to itself alone: the softmax
  # weight is 1 and out = v_0 @ W_O, with v_0 = [1, 0] @ W_V = [1, 2, 0, 1].
  out = _attention(X, CAUSAL)
  np.testing.assert_allclose(out[0, 0], [1.0 + 0.0, 2.0 - 1.0], rtol=1e-6)


def test_masked_keys_do_not_change_the_output():
  changed = X.copy()
  changed[0, 3] = [100.0, -7.0]  # the causal mask hides it from rows 0..2
  np.testing.assert_allclose(_attention(changed, CAUSAL)[0, :3],
                             _attention(X, CAUSAL)[0, :3], rtol=1e-6)
  # Packed: the second example does not see the first.
  changed = X.copy()
  changed[0, 0] = [9.0, 9.0]
  np.testing.assert_allclose(_attention(changed, PACKED)[0, 2:],
                             _attention(X, PACKED)[0, 2:], rtol=1e-6)


# ------------------------ Relative position buckets -------------------------

# T5's bucketing (mesh-tensorflow `_relative_position_bucket`, 32 buckets,
# max_distance 128), worked out by hand for a few `key - query` distances.
# Bidirectional: 16 buckets per direction (keys after the query add 16);
# |d| < 8 gets bucket |d|, else 8 + floor(8 * log(|d| / 8) / log(16)),
# capped at 15: |d| = 12 -> 8 + floor(1.17) = 9, 16 -> 10, 23 -> 11
# (floor(3.05)), 32 -> 12, 64 -> 14, 90 -> 14 (floor(6.98)), 91 -> 15
# (floor(7.02)), 128 and 1000 -> 15.
BIDIRECTIONAL = {
    0: 0, -1: 1, -7: 7, -8: 8, -11: 8, -12: 9, -16: 10, -23: 11, -32: 12,
    -64: 14, -90: 14, -91: 15, -128: 15, -1000: 15,
    1: 17, 7: 23, 8: 24, 12: 25, 32: 28, 128: 31, 1000: 31,
}
# Causal (decoder): keys after the query all get bucket 0; n = query - key;
# n < 16 gets bucket n, else 16 + floor(16 * log(n / 16) / log(8)), capped
# at 31: 20 -> 16 + floor(1.72) = 17, 32 -> 21 (floor(5.33)), 64 -> 26
# (floor(10.67)), 100 -> 30 (floor(14.10)), 127 -> 31 (floor(15.94)).
CAUSAL_BUCKETS = {
    5: 0, 1: 0, 0: 0, -1: 1, -15: 15, -16: 16, -20: 17, -32: 21, -64: 26,
    -100: 30, -127: 31, -128: 31, -5000: 31,
}


@pytest.mark.parametrize("bidirectional,table", [
    (True, BIDIRECTIONAL), (False, CAUSAL_BUCKETS)],
                         ids=["bidirectional", "causal"])
def test_relative_position_buckets_match_t5_table(bidirectional, table):
  distances = np.array(sorted(table))
  got = layers.relative_position_bucket(distances, bidirectional,
                                        num_buckets=32, max_distance=128)
  assert dict(zip(distances.tolist(), got.tolist())) == table


def test_relative_position_biases_look_up_the_table_per_head():
  module = layers.RelativePositionBiases(num_buckets=32, max_distance=128,
                                         num_heads=2)
  table = np.stack([np.arange(32.0), -np.arange(32.0)])  # [heads, buckets]
  bias = module.apply({"params": {"rel_embedding": table}}, 2, 3, True)
  # key - query: row 0 = [0, 1, 2] -> buckets [0, 17, 18];
  #              row 1 = [-1, 0, 1] -> buckets [1, 0, 17].
  np.testing.assert_array_equal(bias[0, 0], [[0, 17, 18], [1, 0, 17]])
  np.testing.assert_array_equal(bias[0, 1], [[0, -17, -18], [-1, 0, -17]])


# -------------------------- Norm, MLP, embedding ----------------------------


def test_rms_norm_divides_by_root_mean_square_and_scales():
  # rms([3, 4]) = sqrt((9 + 16) / 2) = sqrt(12.5); no mean, no bias.
  out = layers.LayerNorm().apply(
      {"params": {"scale": np.array([1.0, 2.0], np.float32)}},
      jnp.array([[3.0, 4.0]]))
  rms = math.sqrt(12.5)
  np.testing.assert_allclose(out, [[3.0 / rms, 8.0 / rms]], rtol=1e-5)
  np.testing.assert_allclose(out, [[0.8485281, 2.2627417]], rtol=1e-5)


def _gelu_tanh(x):
  return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi)
                                  * (x + 0.044715 * x ** 3)))


def test_gated_gelu_mlp_multiplies_gelu_and_linear_branches():
  # x = [1, 2]; wi_0 = I -> gelu([1, 2]); wi_1 = diag(1, 2) -> [1, 4];
  # hidden = [gelu(1) * 1, gelu(2) * 4]; wo = [[1, 0], [1, 1]].
  params = {
      "wi_0": {"kernel": np.eye(2, dtype=np.float32)},
      "wi_1": {"kernel": np.diag([1.0, 2.0]).astype(np.float32)},
      "wo": {"kernel": np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)},
  }
  out = layers.MlpBlock(2, ("gelu", "linear")).apply(
      {"params": params}, jnp.array([[[1.0, 2.0]]]))
  hidden = [_gelu_tanh(1.0), 4 * _gelu_tanh(2.0)]  # [0.841192, 7.818391]
  np.testing.assert_allclose(hidden, [0.841192, 7.818391], rtol=1e-5)
  np.testing.assert_allclose(out[0, 0], [hidden[0] + hidden[1], hidden[1]],
                             rtol=1e-5)


def test_relu_mlp_of_t5_1_0():
  params = {
      "wi": {"kernel": np.array([[1.0, -1.0], [1.0, 1.0]], np.float32)},
      "wo": {"kernel": np.array([[2.0, 0.0], [0.0, 3.0]], np.float32)},
  }
  # x = [1, -2]: x @ wi = [-1, -3] -> relu [0, 0]; x = [2, 1]: [3, -1] ->
  # [3, 0] -> @ wo = [6, 0].
  out = layers.MlpBlock(2, ("relu",)).apply(
      {"params": params}, jnp.array([[[1.0, -2.0], [2.0, 1.0]]]))
  np.testing.assert_allclose(out[0], [[0.0, 0.0], [6.0, 0.0]])


def test_embed_looks_up_rows_and_attend_is_the_transposed_product():
  table = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], np.float32)
  module = layers.Embed(num_embeddings=3, features=2)
  variables = {"params": {"embedding": table}}
  np.testing.assert_array_equal(
      module.apply(variables, jnp.array([[2, 0]])), [[[3.0, 1.0],
                                                      [1.0, 0.0]]])
  # [1, 1] . rows = [1, 2, 4].
  np.testing.assert_array_equal(
      module.apply(variables, jnp.array([[1.0, 1.0]]), method="attend"),
      [[1.0, 2.0, 4.0]])
