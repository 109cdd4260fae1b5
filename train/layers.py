"""T5 building blocks in Flax, annotated with logical axis names.

Every parameter is created with `nn.with_logical_partitioning` and every large
activation is constrained with `nn.with_logical_constraint`, using the logical
axis names of t5x (`batch`, `length`, `embed`, `mlp`, `heads`, `kv`, `vocab`,
`joined_kv`, `relpos_buckets`); `train/partitioning.py` maps them to the
('data', 'model') mesh. Parameter names follow t5x's
`examples/t5/layers.py`, so checkpoints read the same way.

Numerics follow the T5 papers and Hugging Face's PyTorch `T5Model` (the parity
reference in tests/train/hf_parity_test.py): RMS layer norm without bias or
mean, no 1/sqrt(d) on attention logits (it is folded into the query init),
relative position buckets shared across the layers of a stack.

Precision: `dtype` is the activation dtype (t5x's); `matmul_dtype` the
operand dtype of the contractions (dense layers, attention's two einsums,
the logits). When the two differ (e.g. float32 activations, bfloat16
operands: mixed precision), every contraction goes through `contract`:
operands cast to `matmul_dtype`, accumulated and returned in float32
(`preferred_element_type`), its gradients computed the same way. Layer norms
and softmax always run in float32; parameters are always float32.
"""

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
from jax.experimental import layout as jax_layout
import jax.numpy as jnp
import numpy as np

Array = jax.Array
DType = Any
Initializer = Callable[..., Array]

# Masked attention logits; large but finite so fully masked rows stay finite.
NEG_INF = -1e10


def _param(module: nn.Module, name: str, init: Initializer,
           shape: Sequence[int], axes: Sequence[str]) -> Array:
  """A float32 parameter with logical axis names."""
  return module.param(
      name, nn.with_logical_partitioning(init, tuple(axes)), tuple(shape),
      jnp.float32)


def _same_dtype(a: Optional[DType], b: DType) -> bool:
  return a is None or jnp.dtype(a) == jnp.dtype(b)


def contract(equation: str, x: Array, y: Array, dtype: DType,
             matmul_dtype: Optional[DType] = None) -> Array:
  """`einsum(equation, x, y)` under the precision policy, output in `dtype`.

  With `matmul_dtype` None or equal to `dtype`, a plain einsum of both
  operands cast to `dtype` (float32 throughout, or t5x's bfloat16 mode with
  bfloat16 results). Otherwise the mixed-precision contraction
  `mixed_einsum`: operands in `matmul_dtype`, float32 accumulation and
  result, then cast to `dtype`.

  Args:
    equation: a two-operand einsum equation, e.g. "mk,kn->mn".
    x: the first operand.
    y: the second operand.
    dtype: the activation dtype of the result.
    matmul_dtype: the operands' dtype, or None for `dtype`.

  Returns:
    The contraction, in `dtype`.
  """
  if _same_dtype(matmul_dtype, dtype):
    return jnp.einsum(equation, x.astype(dtype), y.astype(dtype))
  return mixed_einsum(equation, x, y, jnp.dtype(matmul_dtype)).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3))
def mixed_einsum(equation: str, x: Array, y: Array,
                 operand_dtype: DType) -> Array:
  """`einsum(equation, x, y)` on `operand_dtype` operands, float32 result.

  Forward and backward are all contractions of `operand_dtype` operands
  with `preferred_element_type=float32`: the cotangent is cast to
  `operand_dtype` too, so the two gradient contractions run at the same
  (bf16 x bf16 -> f32) speed as the forward one. Plain autodiff would
  multiply the float32 cotangent by the up-cast operand, a float32 matmul.
  The gradients come back in the primal dtypes of `x` and `y` without a
  rounding to `operand_dtype`.

  Args:
    equation: "x_axes,y_axes->out_axes", every axis of an operand also in
      the other operand or the output (true of a matmul or attention).
    x: the first operand, any float dtype.
    y: the second operand, any float dtype.
    operand_dtype: e.g. jnp.bfloat16.

  Returns:
    float32 array, the contraction.
  """
  out, _ = _mixed_einsum_fwd(equation, x, y, operand_dtype)
  return out


def _einsum_axes(equation: str) -> tuple[str, str, str]:
  """"mk,kn->mn" -> ("mk", "kn", "mn"), checked for `mixed_einsum`."""
  inputs, out_axes = equation.replace(" ", "").split("->")
  x_axes, y_axes = inputs.split(",")
  if (set(x_axes) - set(y_axes + out_axes)
      or set(y_axes) - set(x_axes + out_axes)):
    raise ValueError(f"mixed_einsum: {equation!r} sums an axis of one "
                     "operand alone; not supported")
  return x_axes, y_axes, out_axes


def _row_major(a: Array) -> Array:
  """`a` laid out row-major in memory (a copy only where XLA chose another
  layout)."""
  return jax_layout.with_layout_constraint(
      a, jax_layout.Layout(major_to_minor=tuple(range(a.ndim))))


def _dot_f32(equation: str, x: Array, y: Array) -> Array:
  """einsum with float32 accumulation and result, as XLA:CPU runs it fast.

  XLA:CPU runs bf16 x bf16 -> f32 only in its YNNPACK kernels, which read
  the plain [m, k] x [k, n] row-major layout. Any other dot is either
  converted to a float32 dot after compilation (without a word: the
  weight gradients `g^T x` of every dense layer and the tied logits were,
  a third of a training step's FLOPs at half speed) or, for some batched
  layouts (e.g. "bqhd,bhqk->bkhd"), fails (`UNIMPLEMENTED: ... DotThunk`).
  So on CPU every contraction is written as that one dot: the operands
  transposed to [batch, m, k] and [batch, k, n] (batch axes first), and,
  without batch axes, the two operands and the result pinned row-major
  (`with_layout_constraint`; XLA would otherwise fold the transposes back
  into the dot). Elsewhere (GPU, TPU) a plain einsum.

  Args:
    equation: two-operand einsum, no axis summed inside one operand.
    x: first operand.
    y: second operand.

  Returns:
    The float32 contraction.
  """
  x_axes, y_axes, out_axes = _einsum_axes(equation)
  if jax.default_backend() != "cpu":
    return jnp.einsum(equation, x, y, preferred_element_type=jnp.float32)
  batch = [a for a in x_axes if a in y_axes and a in out_axes]
  x_free = [a for a in x_axes if a not in y_axes]
  y_free = [a for a in y_axes if a not in x_axes]
  if (batch + x_free + y_free != list(out_axes)
      and batch + y_free + x_free == list(out_axes)):
    # Swapped, the dot's result is already in the output's order: no
    # transposing copy of the result (e.g. a weight gradient x^T g, which
    # then copies the narrow x, not the wide g, and not the result).
    return _dot_f32(f"{y_axes},{x_axes}->{out_axes}", y, x)
  summed = [a for a in x_axes if a in y_axes and a not in out_axes]
  sizes = dict(zip(x_axes, x.shape)) | dict(zip(y_axes, y.shape))

  def size(axes):
    return int(np.prod([sizes[a] for a in axes], dtype=np.int64))

  x3 = jnp.transpose(x, [x_axes.index(a) for a in batch + x_free + summed])
  y3 = jnp.transpose(y, [y_axes.index(a) for a in batch + summed + y_free])
  x3 = x3.reshape(size(batch), size(x_free), size(summed))
  y3 = y3.reshape(size(batch), size(summed), size(y_free))
  if batch:
    out = jax.lax.dot_general(x3, y3, (((2,), (1,)), ((0,), (0,))),
                              preferred_element_type=jnp.float32)
  else:
    out = _row_major(jax.lax.dot_general(
        _row_major(x3[0]), _row_major(y3[0]), (((1,), (0,)), ((), ())),
        preferred_element_type=jnp.float32))
  order = batch + x_free + y_free
  out = out.reshape([sizes[a] for a in order])
  return jnp.transpose(out, [order.index(a) for a in out_axes])


def _mixed_einsum_fwd(equation, x, y, operand_dtype):
  xc, yc = x.astype(operand_dtype), y.astype(operand_dtype)
  out = _dot_f32(equation, xc, yc)
  # Residuals in `operand_dtype` (half the memory of float32 ones); the
  # empty arrays carry the primal dtypes of the gradients.
  return out, (xc, yc, jnp.zeros((0,), x.dtype), jnp.zeros((0,), y.dtype))


def _mixed_einsum_bwd(equation, operand_dtype, residuals, g):
  xc, yc, x_like, y_like = residuals
  x_axes, y_axes, out_axes = _einsum_axes(equation)
  gc = g.astype(operand_dtype)
  dx = _dot_f32(f"{out_axes},{y_axes}->{x_axes}", gc, yc)
  dy = _dot_f32(f"{out_axes},{x_axes}->{y_axes}", gc, xc)
  return dx.astype(x_like.dtype), dy.astype(y_like.dtype)


mixed_einsum.defvjp(_mixed_einsum_fwd, _mixed_einsum_bwd)


def constrain(x: Array, axes: Sequence[Optional[str]]) -> Array:
  """Sharding hint on an activation (no-op outside a mesh + rules context)."""
  return nn.with_logical_constraint(x, tuple(axes))


class LayerNorm(nn.Module):
  """T5 layer norm: x / rms(x) * scale, no mean subtraction and no bias."""

  epsilon: float = 1e-6
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.astype(jnp.float32)
    scale = _param(self, "scale", nn.initializers.ones, (x.shape[-1],),
                   ("embed",))
    variance = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
    y = x * jax.lax.rsqrt(variance + self.epsilon)
    return (y * scale).astype(self.dtype)


class DenseGeneral(nn.Module):
  """y = x @ kernel over the last axis, kernel with logical axis names."""

  features: Sequence[int]
  kernel_axes: Sequence[str]
  kernel_init: Initializer = nn.initializers.variance_scaling(
      1.0, "fan_in", "truncated_normal")
  dtype: DType = jnp.float32
  matmul_dtype: Optional[DType] = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = tuple(self.features)
    in_dim = x.shape[-1]
    kernel = _param(self, "kernel", self._init, (in_dim,) + features,
                    self.kernel_axes)
    # A 2-D matmul: XLA:CPU then needs no transposing copies in the
    # backward pass (1.7x faster MLP gradients); elsewhere it is a bitcast.
    y = contract("mk,kn->mn", x.reshape((-1, in_dim)),
                 kernel.reshape((in_dim, -1)), self.dtype, self.matmul_dtype)
    return y.reshape(x.shape[:-1] + features)

  def _init(self, key, shape, dtype):
    # Fan-in is the contracted dim; heads x kv outputs are flattened for init.
    flat = (shape[0], int(np.prod(shape[1:])))
    return self.kernel_init(key, flat, dtype).reshape(shape)


class Embed(nn.Module):
  """Token embedding [vocab, embed]; `attend` gives logits against it."""

  num_embeddings: int
  features: int
  dtype: DType = jnp.float32
  embedding_init: Initializer = nn.initializers.normal(stddev=1.0)
  matmul_dtype: Optional[DType] = None

  def setup(self):
    self.embedding = _param(self, "embedding", self.embedding_init,
                            (self.num_embeddings, self.features),
                            ("vocab", "embed"))

  def __call__(self, tokens: Array) -> Array:
    out = jnp.take(self.embedding, tokens.astype(jnp.int32), axis=0)
    return out.astype(self.dtype)

  def attend(self, query: Array) -> Array:
    flat = query.reshape((-1, query.shape[-1]))
    logits = contract("mk,kn->mn", flat, self.embedding.T, self.dtype,
                      self.matmul_dtype)  # 2-D, as in DenseGeneral
    return logits.reshape(query.shape[:-1] + (self.num_embeddings,))


def relative_position_bucket(relative_position: np.ndarray,
                             bidirectional: bool = True,
                             num_buckets: int = 32,
                             max_distance: int = 128) -> np.ndarray:
  """T5's bucketing of `memory_position - query_position` (numpy, static).

  Small distances get their own bucket; larger ones share log-spaced buckets
  up to `max_distance`. In a bidirectional stack half the buckets are for
  keys after the query.

  Args:
    relative_position: int array of `key_pos - query_pos`.
    bidirectional: encoder (True) or causal decoder (False).
    num_buckets: number of buckets.
    max_distance: distances beyond this share the last bucket.

  Returns:
    int32 array of bucket ids, same shape.
  """
  rel = np.asarray(relative_position, np.int64)
  buckets = np.zeros_like(rel)
  if bidirectional:
    num_buckets //= 2
    buckets += (rel > 0).astype(np.int64) * num_buckets
    rel = np.abs(rel)
  else:
    rel = -np.minimum(rel, 0)
  max_exact = num_buckets // 2
  is_small = rel < max_exact
  # float32 like the reference implementations, so bucket edges agree.
  with np.errstate(divide="ignore"):
    large = max_exact + (
        np.log(np.maximum(rel, 1).astype(np.float32) / max_exact)
        / np.float32(np.log(max_distance / max_exact))
        * (num_buckets - max_exact)).astype(np.int64)
  large = np.minimum(large, num_buckets - 1)
  buckets += np.where(is_small, rel, large)
  return buckets.astype(np.int32)


class RelativePositionBiases(nn.Module):
  """Per-head attention bias from bucketed relative positions."""

  num_buckets: int
  max_distance: int
  num_heads: int
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, query_length: int, key_length: int,
               bidirectional: bool = True) -> Array:
    """Returns the bias [1, heads, query_length, key_length]."""
    context = np.arange(query_length)[:, None]
    memory = np.arange(key_length)[None, :]
    buckets = relative_position_bucket(
        memory - context, bidirectional, self.num_buckets, self.max_distance)
    table = _param(self, "rel_embedding",
                   nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
                   (self.num_heads, self.num_buckets),
                   ("heads", "relpos_buckets"))
    bias = jnp.take(table, jnp.asarray(buckets), axis=1)  # [h, q, k]
    return bias[None].astype(self.dtype)


class MultiHeadDotProductAttention(nn.Module):
  """T5 attention (no logit scaling), with an autoregressive KV cache.

  With `decode=True` the first call (from `init`) creates the cache
  `cached_key`/`cached_value` [batch, max_length, heads, head_dim] and
  `cache_index`; later calls take one query position, write its key/value at
  `cache_index` and attend over the filled prefix. A bias of shape
  [.., max_length, max_length] is sliced at the row `cache_index`.
  """

  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  dtype: DType = jnp.float32
  float32_logits: bool = True
  matmul_dtype: Optional[DType] = None

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array,
               bias: Optional[Array] = None, *, decode: bool = False,
               deterministic: bool = True,
               queries_per_key_row: int = 1) -> Array:
    """Attends `inputs_q` [B * r, q, emb] over `inputs_kv` [B, k, emb].

    `queries_per_key_row` (r) is explicit: with r > 1, query rows
    `i * r .. i * r + r - 1` all attend over key row i (candidate replies
    of one context over its one encoded row: keys and values projected
    once). Any other batch mismatch is an error, never a silent fold.
    """
    emb_dim = inputs_q.shape[-1]
    depth_scaling = self.head_dim ** -0.5
    # T5 folds 1/sqrt(head_dim) into the query initializer.
    query_init = nn.initializers.variance_scaling(
        depth_scaling, "fan_in", "normal")
    kv_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    projection = functools.partial(
        DenseGeneral, features=(self.num_heads, self.head_dim),
        kernel_axes=("embed", "heads", "kv"), dtype=self.dtype,
        matmul_dtype=self.matmul_dtype)
    query = projection(kernel_init=query_init, name="query")(inputs_q)
    key = projection(kernel_init=kv_init, name="key")(inputs_kv)
    value = projection(kernel_init=kv_init, name="value")(inputs_kv)
    query = constrain(query, ("batch", "length", "heads", "kv"))
    key = constrain(key, ("batch", "length", "heads", "kv"))
    value = constrain(value, ("batch", "length", "heads", "kv"))

    if decode:
      key, value, bias = self._update_cache(key, value, bias)

    # Several query rows per key row (`rows` candidates scored against one
    # encoded context): fold them into the query length, so the keys and
    # values are projected and read once per context.
    batch, q_len = query.shape[:2]
    rows = queries_per_key_row
    if batch != key.shape[0] * rows:
      raise ValueError(
          f"attention: {batch} query rows for {key.shape[0]} key rows with "
          f"queries_per_key_row={rows}; expected {key.shape[0] * rows}")
    if rows > 1:
      query = query.reshape((key.shape[0], rows * q_len) + query.shape[2:])

    logits = contract("bqhd,bkhd->bhqk", query, key, self.dtype,
                      self.matmul_dtype)
    if bias is not None:
      logits = logits + bias.astype(logits.dtype)
    if self.float32_logits:
      logits = logits.astype(jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    if not deterministic and self.dropout_rate > 0:
      weights = nn.Dropout(self.dropout_rate, broadcast_dims=())(
          weights, deterministic=False)
    out = contract("bhqk,bkhd->bqhd", weights, value, self.dtype,
                   self.matmul_dtype)
    if rows > 1:
      out = out.reshape((batch, q_len) + out.shape[2:])
    out = constrain(out, ("batch", "length", "heads", "kv"))
    return DenseGeneral(
        features=(emb_dim,), kernel_axes=("joined_kv", "embed"),
        dtype=self.dtype, matmul_dtype=self.matmul_dtype, name="out",
        kernel_init=kv_init)(out.reshape(out.shape[:-2] + (-1,)))

  def _update_cache(self, key, value, bias):
    """Writes one step's key/value into the cache; returns the full ones."""
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape,
                               key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros,
                                 value.shape, value.dtype)
    cache_index = self.variable("cache", "cache_index",
                                lambda: jnp.array(0, jnp.int32))
    if not initialized:
      return key, value, bias
    max_length = cached_key.value.shape[1]
    if key.shape[1] != 1:
      raise ValueError(
          f"decode=True takes one position per call, got {key.shape[1]}")
    index = cache_index.value
    cached_key.value = jax.lax.dynamic_update_slice(
        cached_key.value, key, (0, index, 0, 0))
    cached_value.value = jax.lax.dynamic_update_slice(
        cached_value.value, value, (0, index, 0, 0))
    cache_index.value = index + 1
    # Only the filled prefix (positions <= index) is visible.
    visible = (jnp.arange(max_length) <= index)[None, None, None, :]
    step_bias = jnp.where(visible, 0.0, NEG_INF)
    if bias is not None:
      if bias.shape[-2] == max_length:
        # A whole [.., max_length, max_length] bias: keep the row `index`.
        bias = jax.lax.dynamic_slice_in_dim(bias, index, 1, axis=-2)
      step_bias = step_bias + bias
    return cached_key.value, cached_value.value, step_bias


class MlpBlock(nn.Module):
  """T5 feed-forward: ReLU (1.0) or gated, e.g. ('gelu', 'linear') (1.1)."""

  intermediate_dim: int
  activations: Sequence[str] = ("relu",)
  dropout_rate: float = 0.0
  dtype: DType = jnp.float32
  matmul_dtype: Optional[DType] = None

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    emb_dim = x.shape[-1]
    init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    hidden = 1.0
    for i, name in enumerate(self.activations):
      dense_name = "wi" if len(self.activations) == 1 else f"wi_{i}"
      h = DenseGeneral((self.intermediate_dim,), ("embed", "mlp"),
                       kernel_init=init, dtype=self.dtype,
                       matmul_dtype=self.matmul_dtype, name=dense_name)(x)
      hidden = hidden * _activation(name)(h)
    hidden = constrain(hidden, ("batch", "length", "mlp"))
    hidden = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(
        hidden, deterministic=deterministic)
    return DenseGeneral((emb_dim,), ("mlp", "embed"), kernel_init=init,
                        dtype=self.dtype, matmul_dtype=self.matmul_dtype,
                        name="wo")(hidden)


def _activation(name: str) -> Callable[[Array], Array]:
  if name == "linear":
    return lambda x: x
  if name == "gelu":
    # tanh approximation, as T5 1.1 ("gelu_new" in Hugging Face).
    return functools.partial(nn.gelu, approximate=True)
  if name == "gelu_exact":
    return functools.partial(nn.gelu, approximate=False)
  if hasattr(nn, name):
    return getattr(nn, name)
  raise ValueError(f"unknown MLP activation {name!r}")


def make_attention_mask(query_mask: Array, key_mask: Array) -> Array:
  """[batch, q] x [batch, k] booleans -> [batch, 1, q, k]."""
  return (query_mask[:, None, :, None] & key_mask[:, None, None, :])


def make_causal_mask(length: int) -> Array:
  """[1, 1, length, length]: query i sees keys 0..i."""
  return jnp.tril(jnp.ones((length, length), bool))[None, None]


def make_segment_mask(query_segment_ids: Array,
                      key_segment_ids: Array) -> Array:
  """[batch, q] x [batch, k] packed-segment ids -> [batch, 1, q, k].

  True where query and key belong to the same packed example.
  """
  return (query_segment_ids[:, None, :, None]
          == key_segment_ids[:, None, None, :])


def mask_to_bias(mask: Array, dtype: DType = jnp.float32) -> Array:
  return jnp.where(mask, 0.0, NEG_INF).astype(dtype)
