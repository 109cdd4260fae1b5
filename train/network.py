"""The T5 encoder-decoder (T5 1.0 and T5 1.1) in Flax; returns logits only.

One config covers both variants:

  T5 1.0: mlp_activations=("relu",),         logits_via_embedding=True
  T5 1.1: mlp_activations=("gelu", "linear"), logits_via_embedding=False

Parameter tree (t5x names):

  token_embedder/embedding                       [vocab, embed]
  encoder/relpos_bias/rel_embedding              [heads, buckets]
  encoder/layers_<i>/{pre_attention_layer_norm, attention/{query,key,value,
      out}, pre_mlp_layer_norm, mlp/{wi | wi_0, wi_1, wo}}
  encoder/encoder_norm
  decoder/relpos_bias/rel_embedding
  decoder/layers_<i>/{pre_self_attention_layer_norm, self_attention,
      pre_cross_attention_layer_norm, encoder_decoder_attention,
      pre_mlp_layer_norm, mlp}
  decoder/decoder_norm, decoder/logits_dense (T5 1.1 only)

Model features are seqio's EncDecFeatureConverter keys; with packing, the
`*_segment_ids` keep segments apart.

Shape comments use b = batch, l = encoder length, t = decoder length, e =
emb_dim, h = num_heads, v = vocab_size; each module asserts the rank of its
inputs on entry.
"""

import dataclasses
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from train import layers

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyper-parameters of a T5; the gin model files set them."""

  vocab_size: int = 32128
  emb_dim: int = 512
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  head_dim: int = 64
  mlp_dim: int = 1024
  mlp_activations: Sequence[str] = ("gelu", "linear")
  dropout_rate: float = 0.1
  logits_via_embedding: bool = False
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  # Activation dtype (t5x's `dtype`); parameters are always float32.
  dtype: Any = jnp.float32
  float32_attention_logits: bool = True
  # Operand dtype of every dense, attention and logits contraction; None
  # means `dtype`. 'bfloat16' with float32 `dtype` is mixed precision:
  # bf16 operands accumulated and returned in float32 (layers.contract).
  matmul_dtype: Any = None

  def __post_init__(self):
    # gin and JSON give lists; keep the dataclass hashable.
    object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))


class EncoderLayer(nn.Module):
  """Pre-norm self-attention and MLP blocks, each with a residual.

  `bias` (relative positions + padding mask) is computed once per stack.
  """

  config: T5Config

  @nn.compact
  def __call__(self, x, bias, deterministic):
    cfg = self.config
    assert x.ndim == 3, x.shape  # [b, l, e]
    assert bias.ndim == 4, bias.shape  # [b, h, l, l]
    y = layers.LayerNorm(dtype=cfg.dtype, name="pre_attention_layer_norm")(x)
    y = _attention(cfg, "attention")(y, y, bias, deterministic=deterministic)
    x = x + _dropout(cfg, y, deterministic)
    y = layers.LayerNorm(dtype=cfg.dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate,
                        cfg.dtype, cfg.matmul_dtype, name="mlp")(
                            y, deterministic)  # [b, l, e]
    x = x + _dropout(cfg, y, deterministic)
    return layers.constrain(x, ("batch", "length", "embed"))


class DecoderLayer(nn.Module):
  """Causal self-attention, cross-attention and MLP, pre-norm residuals.

  The biases are computed once per stack; when decoding, `self_bias` is the
  whole [max_len, max_len] relative bias and the attention layer takes the
  row of the position it decodes (its cache index).
  """

  config: T5Config

  @nn.compact
  def __call__(self, x, encoded, self_bias, cross_bias, deterministic,
               decode, rows_per_context=1):
    cfg = self.config
    assert x.ndim == 3, x.shape  # [b, t, e]
    assert encoded.ndim == 3, encoded.shape  # [b_enc, l, e]
    assert self_bias.ndim == 4 and cross_bias.ndim == 4
    y = layers.LayerNorm(dtype=cfg.dtype,
                         name="pre_self_attention_layer_norm")(x)
    y = _attention(cfg, "self_attention")(
        y, y, self_bias, decode=decode, deterministic=deterministic)
    x = x + _dropout(cfg, y, deterministic)
    y = layers.LayerNorm(dtype=cfg.dtype,
                         name="pre_cross_attention_layer_norm")(x)
    y = _attention(cfg, "encoder_decoder_attention")(
        y, encoded, cross_bias, deterministic=deterministic,
        queries_per_key_row=rows_per_context)  # [b, t, e]
    x = x + _dropout(cfg, y, deterministic)
    y = layers.LayerNorm(dtype=cfg.dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate,
                        cfg.dtype, cfg.matmul_dtype, name="mlp")(
                            y, deterministic)  # [b, t, e]
    x = x + _dropout(cfg, y, deterministic)
    return layers.constrain(x, ("batch", "length", "embed"))


def _attention(cfg, name):
  return layers.MultiHeadDotProductAttention(
      cfg.num_heads, cfg.head_dim, cfg.dropout_rate, cfg.dtype,
      cfg.float32_attention_logits, cfg.matmul_dtype, name=name)


def _dropout(cfg, x, deterministic):
  return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(
      x, deterministic=deterministic)


class Encoder(nn.Module):
  """Token ids [b, l] -> encoded [b, l, e]."""

  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, tokens, segment_ids=None, deterministic=True):
    cfg = self.config
    assert tokens.ndim == 2, tokens.shape  # [b, l]
    rel = layers.RelativePositionBiases(
        cfg.relative_attention_num_buckets,
        cfg.relative_attention_max_distance, cfg.num_heads, cfg.dtype,
        name="relpos_bias")
    mask = layers.make_attention_mask(tokens > 0, tokens > 0)  # [b, 1, l, l]
    if segment_ids is not None:
      mask &= layers.make_segment_mask(segment_ids, segment_ids)
    length = tokens.shape[-1]
    bias = rel(length, length, True) + layers.mask_to_bias(
        mask, cfg.dtype)  # [1, h, l, l] + [b, 1, l, l] -> [b, h, l, l]
    x = self.shared_embedding(tokens)  # [b, l, e]
    x = _dropout(cfg, x, deterministic)
    for i in range(cfg.num_encoder_layers):
      x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic)
    x = layers.LayerNorm(dtype=cfg.dtype, name="encoder_norm")(x)
    return _dropout(cfg, x, deterministic)  # [b, l, e]


class Decoder(nn.Module):
  """Encoded [b_enc, l, e] and decoder tokens [b, t] -> logits [b, t, v].

  `b` may be a multiple of `b_enc`: several decoder rows (candidate replies
  of one context) attend to the same encoded row.
  """

  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, encoded, encoder_tokens, decoder_input_tokens,
               decoder_target_tokens=None, encoder_segment_ids=None,
               decoder_segment_ids=None, deterministic=True, decode=False,
               max_decode_length=None, rows_per_context=1,
               return_hidden=False):
    cfg = self.config
    assert encoded.ndim == 3, encoded.shape  # [b_enc, l, e]
    assert encoder_tokens.ndim == 2, encoder_tokens.shape  # [b_enc, l]
    assert decoder_input_tokens.ndim == 2, decoder_input_tokens.shape  # [b, t]
    rel = layers.RelativePositionBiases(
        cfg.relative_attention_num_buckets,
        cfg.relative_attention_max_distance, cfg.num_heads, cfg.dtype,
        name="relpos_bias")
    batch, length = decoder_input_tokens.shape
    enc_valid = encoder_tokens > 0  # [b_enc, l]
    if decode:
      # Causality and padding come from the cache's filled prefix.
      self_bias = rel(max_decode_length, max_decode_length,
                      False)  # [1, h, max_len, max_len]
    else:
      causal = layers.make_causal_mask(length)  # [1, 1, t, t]
      dec_valid = (decoder_target_tokens > 0 if decoder_target_tokens
                   is not None else jnp.ones((batch, length), bool))  # [b, t]
      self_mask = causal & layers.make_attention_mask(
          dec_valid, dec_valid)  # [1, 1, t, t] & [b, 1, t, t] -> [b, 1, t, t]
      if decoder_segment_ids is not None:
        self_mask &= layers.make_segment_mask(decoder_segment_ids,
                                              decoder_segment_ids)
      self_bias = rel(length, length, False) + layers.mask_to_bias(
          self_mask, cfg.dtype)  # [b, h, t, t]
    if decode or rows_per_context > 1:
      # One position at a time, or several decoder rows per encoded row
      # (candidate replies of one context, folded by the cross-attention):
      # only padded keys are masked.
      cross_mask = enc_valid[:, None, None, :]  # [b_enc, 1, 1, l]
    else:
      cross_mask = layers.make_attention_mask(
          dec_valid, enc_valid)  # [b, 1, t, l]
      if decoder_segment_ids is not None:
        cross_mask &= layers.make_segment_mask(decoder_segment_ids,
                                               encoder_segment_ids)
    cross_bias = layers.mask_to_bias(cross_mask, cfg.dtype)

    y = self.shared_embedding(decoder_input_tokens)  # [b, t, e]
    y = _dropout(cfg, y, deterministic)
    for i in range(cfg.num_decoder_layers):
      y = DecoderLayer(cfg, name=f"layers_{i}")(
          y, encoded, self_bias, cross_bias, deterministic, decode,
          rows_per_context)
    y = layers.LayerNorm(dtype=cfg.dtype, name="decoder_norm")(y)
    y = _dropout(cfg, y, deterministic)
    if return_hidden:
      return y  # [b, t, e]: `Transformer.logits` projects it.
    if cfg.logits_via_embedding:
      # Tied output embedding, rescaled as in T5 1.0: the hidden state, as
      # Hugging Face does, not the [b, t, v] logits (one pass fewer over
      # the largest array of the step).
      logits = self.shared_embedding.attend(
          y * (y.shape[-1] ** -0.5))  # [b, t, v]
    else:
      logits = layers.DenseGeneral(
          (cfg.vocab_size,), ("embed", "vocab"), dtype=cfg.dtype,
          matmul_dtype=cfg.matmul_dtype,
          kernel_init=nn.initializers.variance_scaling(
              1.0, "fan_in", "truncated_normal"),
          name="logits_dense")(y)  # [b, t, v]
    logits = logits.astype(jnp.float32)
    return layers.constrain(logits, ("batch", "length", "vocab"))


class Transformer(nn.Module):
  """T5: `__call__` gives logits; `encode`/`decode` serve decoding."""

  config: T5Config

  def setup(self):
    cfg = self.config
    self.token_embedder = layers.Embed(cfg.vocab_size, cfg.emb_dim, cfg.dtype,
                                       matmul_dtype=cfg.matmul_dtype)
    self.encoder = Encoder(cfg, self.token_embedder)
    self.decoder = Decoder(cfg, self.token_embedder)

  def encode(self, encoder_input_tokens: Array,
             encoder_segment_ids: Optional[Array] = None,
             enable_dropout: bool = True) -> Array:
    return self.encoder(encoder_input_tokens, encoder_segment_ids,
                        deterministic=not enable_dropout)

  def decode(self, encoded: Array, encoder_input_tokens: Array,
             decoder_input_tokens: Array,
             decoder_target_tokens: Optional[Array] = None,
             encoder_segment_ids: Optional[Array] = None,
             decoder_segment_ids: Optional[Array] = None,
             enable_dropout: bool = True, decode: bool = False,
             max_decode_length: Optional[int] = None,
             rows_per_context: int = 1,
             return_hidden: bool = False) -> Array:
    """Logits of the decoder over `encoded`.

    `rows_per_context` (r): decoder rows `i * r .. i * r + r - 1` read
    encoded row i (candidate replies scored against one context); any other
    batch mismatch fails in the cross-attention. `return_hidden`: the final
    decoder states [b, t, e] instead, for `logits`.
    """
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens,
                        decoder_target_tokens, encoder_segment_ids,
                        decoder_segment_ids, deterministic=not enable_dropout,
                        decode=decode, max_decode_length=max_decode_length,
                        rows_per_context=rows_per_context,
                        return_hidden=return_hidden)

  def logits(self, hidden: Array, vocab_ids: Optional[Array] = None) -> Array:
    """The output projection of `decode(..., return_hidden=True)` states.

    Args:
      hidden: decoder states [..., e].
      vocab_ids: int [..., k]: only these logits of each state (k dot
        products instead of the vocabulary projection).

    Returns:
      float32 logits [..., v], or [..., k] for `vocab_ids`: those `decode`
      computes (the same tied or untied projection and precision policy).
    """
    cfg = self.config
    if cfg.logits_via_embedding:
      table = self.token_embedder.embedding  # [v, e]
    else:
      kernel = nn.unbox(self.decoder.variables["params"]["logits_dense"][
          "kernel"])  # [e, v]
      table = kernel.T
    if cfg.logits_via_embedding:  # Rescaled as in `Decoder`.
      hidden = hidden * (hidden.shape[-1] ** -0.5)
    if vocab_ids is None:
      flat = hidden.reshape((-1, hidden.shape[-1]))
      out = layers.contract("mk,kn->mn", flat, table.T, cfg.dtype,
                            cfg.matmul_dtype).reshape(
                                hidden.shape[:-1] + (table.shape[0],))
    else:
      rows = jnp.take(table, vocab_ids, axis=0)  # [..., k, e]
      operand = cfg.matmul_dtype or cfg.dtype
      out = jnp.einsum("...e,...ke->...k", hidden.astype(operand),
                       rows.astype(operand),
                       preferred_element_type=jnp.float32).astype(cfg.dtype)
    return out.astype(jnp.float32)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None,
               encoder_segment_ids: Optional[Array] = None,
               decoder_segment_ids: Optional[Array] = None,
               encoder_positions: Optional[Array] = None,
               decoder_positions: Optional[Array] = None,
               enable_dropout: bool = True, decode: bool = False,
               max_decode_length: Optional[int] = None) -> Array:
    """Logits [batch, target_length, vocab] (float32).

    Positions are accepted for feature-converter compatibility; relative
    biases use in-sequence offsets, which equal position differences within
    a packed segment (other segments are masked).
    """
    del encoder_positions, decoder_positions
    encoded = self.encode(encoder_input_tokens, encoder_segment_ids,
                          enable_dropout)  # [b, l, e]
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                       decoder_target_tokens, encoder_segment_ids,
                       decoder_segment_ids, enable_dropout, decode,
                       max_decode_length)
