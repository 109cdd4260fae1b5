"""Mixed precision (`matmul_dtype='bfloat16'`): exact where it can be, close
to float32 where it cannot.

The contraction itself is compared with numpy on bf16-rounded operands
(float32 accumulation makes it exact to float32 rounding), its gradients
likewise, and the lowered train step is checked to hold no float32 matmul.
Then a small T5 trains 40 steps on a learnable synthetic task (output = the
input's first tokens reversed) with the same seed in both precisions, and
the float32-trained weights are decoded, scored and used to rank candidates
in both. The tolerances are stated with each test; the measured values on
this CPU are in the comments.
"""

import re

import gin
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
import seqio.test_utils

from crs_runtime import gin_flags
from train import layers
from train import models
from train import network

VOCAB = seqio.test_utils.sentencepiece_vocab()
BF16 = jnp.bfloat16
ENC_LEN, DEC_LEN, BATCH, STEPS = 12, 6, 16, 40


def _round_bf16(x):
  """float64 copy of `x` rounded to bf16, as the contraction sees it."""
  return np.asarray(x).astype(ml_dtypes.bfloat16).astype(np.float64)


@pytest.mark.parametrize("equation,x_shape,y_shape", [
    ("mk,kn->mn", (6, 16), (16, 5)),
    ("bqhd,bkhd->bhqk", (2, 3, 2, 8), (2, 4, 2, 8)),
    ("bhqk,bkhd->bqhd", (2, 2, 3, 4), (2, 4, 2, 8)),
])
def test_mixed_einsum_is_float32_accumulation_of_bf16_operands(
    equation, x_shape, y_shape):
  rng = np.random.RandomState(0)
  x = rng.randn(*x_shape).astype(np.float32)
  y = rng.randn(*y_shape).astype(np.float32)
  out = layers.mixed_einsum(equation, x, y, BF16)
  assert out.dtype == jnp.float32
  want = np.einsum(equation, _round_bf16(x), _round_bf16(y))
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)

  # Gradients of sum(out * g): contractions of the bf16-rounded cotangent
  # with the bf16-rounded other operand, returned in float32.
  g = rng.randn(*out.shape).astype(np.float32)
  dx, dy = jax.grad(
      lambda a, b: jnp.sum(layers.mixed_einsum(equation, a, b, BF16) * g),
      argnums=(0, 1))(x, y)
  inputs, out_axes = equation.split("->")
  x_axes, y_axes = inputs.split(",")
  want_dx = np.einsum(f"{out_axes},{y_axes}->{x_axes}", _round_bf16(g),
                      _round_bf16(y))
  want_dy = np.einsum(f"{out_axes},{x_axes}->{y_axes}", _round_bf16(g),
                      _round_bf16(x))
  assert dx.dtype == dy.dtype == jnp.float32
  np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dy, want_dy, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU layout")
def test_weight_gradient_copies_only_the_narrow_operand():
  """dW = x^T g of a dense layer (x [m, k] narrow, g [m, n] wide) is one
  row-major dot of x^T [k, m] (copied) and g as it is, whose [k, n] result
  needs no transposing: neither g^T [n, m] nor dW^T [n, k] is ever made.
  Written as g^T x, as autodiff orders it, both were copied."""
  m, k, n = 48, 8, 40
  x = jnp.ones((m, k), jnp.float32)
  w = jnp.ones((k, n), jnp.float32)
  g = jnp.ones((m, n), jnp.float32)
  grad_w = jax.jit(jax.grad(
      lambda w: jnp.sum(layers.mixed_einsum("mk,kn->mn", x, w, BF16) * g)))
  hlo = grad_w.lower(w).compile().as_text()
  assert "bf16[8,48]" in hlo  # x^T, the narrow copy
  assert "bf16[40,48]" not in hlo and "f32[40,8]" not in hlo, hlo
  np.testing.assert_allclose(grad_w(w), np.full((k, n), float(m)))


def test_mixed_einsum_rejects_an_axis_summed_inside_one_operand():
  with pytest.raises(ValueError, match="sums an axis of one operand"):
    layers.mixed_einsum("mk,kn->n", jnp.ones((2, 3)), jnp.ones((3, 4)), BF16)


def test_float32_contract_is_the_plain_matmul():
  rng = np.random.RandomState(1)
  x = rng.randn(7, 16).astype(np.float32)
  w = rng.randn(16, 9).astype(np.float32)
  for matmul_dtype in (None, jnp.float32, "float32"):
    got = layers.contract("mk,kn->mn", x, w, jnp.float32, matmul_dtype)
    np.testing.assert_array_equal(got, jnp.asarray(x) @ jnp.asarray(w))


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_model_files_name_matmul_dtype(variant):
  """MATMUL_DTYPE follows ACTIVATION_DTYPE unless set; it reaches T5Config."""
  gin.clear_config()
  try:
    gin_flags.parse_gin([f"models/{variant}_tiny.gin"], finalize=False)
    assert "ACTIVATION_DTYPE" in repr(gin.query_parameter("%MATMUL_DTYPE"))
    assert "MATMUL_DTYPE" in repr(
        gin.query_parameter("train.network.T5Config.matmul_dtype"))
    gin.clear_config()
    gin_flags.parse_gin([f"models/{variant}_tiny.gin"],
                        ["MATMUL_DTYPE = 'bfloat16'"], finalize=False)
    assert gin.query_parameter("%MATMUL_DTYPE") == "bfloat16"
  finally:
    gin.clear_config()


def _model(matmul_dtype=None, variant="t5_1_1"):
  config = network.T5Config(
      vocab_size=64, emb_dim=64, num_heads=2, head_dim=16, mlp_dim=128,
      num_encoder_layers=1, num_decoder_layers=1, dropout_rate=0.0,
      mlp_activations=("gelu", "linear") if variant == "t5_1_1" else (
          "relu",),
      logits_via_embedding=variant == "t5_1_0", matmul_dtype=matmul_dtype)
  return models.EncoderDecoderModel(network.Transformer(config), VOCAB,
                                    VOCAB)


def _init(model):
  variables = model.get_initial_variables(
      jax.random.PRNGKey(0), {"encoder_input_tokens": (BATCH, ENC_LEN),
                              "decoder_input_tokens": (BATCH, DEC_LEN)})
  return jax.tree.map(np.asarray, jax.tree.map(
      lambda x: x.unbox() if hasattr(x, "unbox") else x, variables["params"],
      is_leaf=lambda x: hasattr(x, "unbox")))


def _batch(seed):
  """Learnable: the target is the first DEC_LEN - 1 inputs reversed + EOS."""
  rng = np.random.RandomState(seed)
  enc = rng.randint(3, 64, (BATCH, ENC_LEN)).astype(np.int32)
  enc[:, -1] = 1
  tgt = np.concatenate([enc[:, :DEC_LEN - 1][:, ::-1],
                        np.ones((BATCH, 1), np.int32)], axis=1)
  return {
      "encoder_input_tokens": enc,
      "decoder_input_tokens": np.pad(tgt[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": np.ones_like(tgt, np.float32),
  }


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_mixed_train_step_has_no_float32_matmul(variant):
  model = _model(BF16, variant)
  params = _init(model)
  grad_fn = jax.jit(jax.grad(lambda p, b: model.loss_fn(p, b, None)[0]))
  text = grad_fn.lower(params, _batch(0)).as_text()
  dots = [l for l in text.splitlines() if "stablehlo.dot_general" in l]
  # Attention projections and einsums, MLP and logits, forward and both
  # gradients: dozens of contractions.
  assert len(dots) > 50, len(dots)
  for dot in dots:
    operands, result = re.search(r":\s*\((.*)\)\s*->\s*(.*)$", dot).groups()
    assert operands.count("xbf16>") == 2, dot
    assert result.strip().endswith("xf32>"), dot


def _compiled_dot_operand_types(hlo_text):
  """(lhs, rhs) element types of every dot of a compiled HLO module."""
  types = dict(re.findall(r"%(\S+) = (\w+)\[", hlo_text))
  for signature in re.findall(r"\(([^()]*)\) ->", hlo_text):
    types.update(re.findall(r"(\S+): (\w+)\[", signature))
  return [(types.get(lhs), types.get(rhs)) for lhs, rhs in
          re.findall(r" dot\(%(\S+), %(\S+)\)", hlo_text)]


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_compiled_mixed_train_step_keeps_bf16_dots(variant):
  """What XLA:CPU runs, not only what JAX lowers: XLA converts a bf16 dot
  its bf16 kernels cannot read (e.g. the weight gradients' transposed
  operand) to a float32 dot after compilation."""
  model = _model(BF16, variant)
  params = _init(model)
  grad_fn = jax.jit(jax.grad(lambda p, b: model.loss_fn(p, b, None)[0]))
  text = grad_fn.lower(params, _batch(0)).compile().as_text()
  dots = _compiled_dot_operand_types(text)
  assert len(dots) > 50, len(dots)
  upcast = [d for d in dots if d != ("bf16", "bf16")]
  assert not upcast, f"{len(upcast)} of {len(dots)} dots are {upcast[:3]}"


@pytest.fixture(name="trained", scope="module")
def _trained():
  """40 AdamW steps per precision from the same init on the same batches."""
  batches = [_batch(i) for i in range(STEPS)]
  out = {}
  for name, dtype in (("f32", None), ("mixed", BF16)):
    model = _model(dtype)
    params = _init(model)
    opt = optax.adamw(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, model=model, opt=opt):
      loss, grads = jax.value_and_grad(
          lambda p: model.loss_fn(p, batch, None)[0])(params)
      updates, state = opt.update(grads, state, params)
      return optax.apply_updates(params, updates), state, loss

    losses = []
    for batch in batches:
      params, state, loss = step(params, state, batch)
      losses.append(float(loss) / (BATCH * DEC_LEN))
    out[name] = (model, params, np.array(losses))
  return out


def test_training_losses_agree_within_3_percent(trained):
  f32, mixed = trained["f32"][2], trained["mixed"][2]
  assert f32[-1] < 0.9 * f32[0]  # it learns (measured: 4.66 -> 3.89)
  assert not np.array_equal(f32, mixed)  # bf16 really ran
  # Measured: at most 1.25% apart over the 40 steps.
  np.testing.assert_allclose(mixed, f32, rtol=0.03)


def test_a_checkpoint_scores_and_decodes_alike(trained):
  """Same (float32-trained) weights, both precisions.

  Tolerances: target log-likelihoods within 2% (relative) and 0.1 nats;
  greedy decodes equal for at least 15 of 16 rows.
  """
  model32, params, _ = trained["f32"]
  model16 = _model(BF16)
  batch = _batch(1000)
  a = np.asarray(model32.score_batch(params, batch))
  b = np.asarray(model16.score_batch(params, batch))
  assert b.dtype == np.float32
  # Measured: at most 0.039 nats apart (scores -22 to -25).
  np.testing.assert_allclose(b, a, rtol=0.02, atol=0.1)
  greedy32 = np.asarray(model32.predict_batch(params, batch))
  greedy16 = np.asarray(model16.predict_batch(params, batch))
  # Measured: all 16 rows equal.
  assert np.mean(np.all(greedy32 == greedy16, axis=1)) >= 15 / 16


def test_candidate_ranks_change_for_at_most_15_percent(trained):
  """Ranks of 64 candidate replies (6 tokens) for each of 16 contexts.

  These 40-step weights score every candidate alike (ranks are near-ties,
  the hardest case). Tolerance: at most 15% of the 1,024 (context,
  candidate) ranks change, and at most 0.5% of the candidate pairs swap
  order. Measured: 10.2% of ranks changed (by one place for the true
  target's), 0.16% of pairs swapped.
  """
  model32, params, _ = trained["f32"]
  model16 = _model(BF16)
  batch = _batch(2000)
  others = np.concatenate([_batch(3000 + i)["decoder_target_tokens"]
                           for i in range(4)])[:63]
  candidates = np.concatenate([batch["decoder_target_tokens"][:1], others])
  enc = batch["encoder_input_tokens"]
  a = np.asarray(model32.score_candidates(params, enc, candidates))
  b = np.asarray(model16.score_candidates(params, enc, candidates))
  rank_a = np.argsort(np.argsort(-a, axis=1), axis=1)
  rank_b = np.argsort(np.argsort(-b, axis=1), axis=1)
  assert np.mean(rank_a != rank_b) <= 0.15
  pair_a = np.sign(a[:, :, None] - a[:, None, :])
  pair_b = np.sign(b[:, :, None] - b[:, None, :])
  assert np.mean(pair_a != pair_b) <= 0.005
