"""Cross-entropy, z-loss and label smoothing against hand computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import losses


def test_uniform_logits_cost_log_vocab():
  # Two tokens, equal logits: p = 1/2 for each, CE = ln 2; log Z = ln 2.
  logits = jnp.zeros((1, 1, 2))
  loss, z, weight = losses.compute_weighted_cross_entropy(
      logits, jnp.array([[0]]), z_loss=0.5)
  assert float(weight) == 1.0
  assert float(z) == pytest.approx(0.5 * math.log(2) ** 2, rel=1e-6)
  assert float(loss) == pytest.approx(math.log(2) + 0.5 * math.log(2) ** 2,
                                      rel=1e-6)


def test_weights_mask_tokens_and_normalizing_factor_divides():
  # logits favour token 1 by ln 3: p(1) = 3/4, p(0) = 1/4.
  logits = jnp.log(jnp.array([[[1.0, 3.0], [1.0, 3.0]]]))
  targets = jnp.array([[1, 0]])
  loss, _, weight = losses.compute_weighted_cross_entropy(
      logits, targets, jnp.array([[1.0, 0.0]]))
  assert float(weight) == 1.0
  assert float(loss) == pytest.approx(-math.log(0.75), rel=1e-6)
  both, _, _ = losses.compute_weighted_cross_entropy(logits, targets)
  assert float(both) == pytest.approx(-math.log(0.75) - math.log(0.25),
                                      rel=1e-6)
  half, _, _ = losses.compute_weighted_cross_entropy(
      logits, targets, loss_normalizing_factor=2.0)
  assert float(half) == pytest.approx(float(both) / 2, rel=1e-6)


def test_label_smoothing_subtracts_target_entropy():
  # Vocab 3, smoothing 0.3: target q = (0.7, 0.15, 0.15) on label 0.
  # With uniform logits: CE(q, p) = ln 3, H(q) = -(0.7 ln .7 + 2 * .15 ln .15).
  q = np.array([0.7, 0.15, 0.15])
  entropy = -float(np.sum(q * np.log(q)))
  loss, _, _ = losses.compute_weighted_cross_entropy(
      jnp.zeros((1, 1, 3)), jnp.array([[0]]), label_smoothing=0.3)
  assert float(loss) == pytest.approx(math.log(3) - entropy, rel=1e-5)
  # Logits equal to log q: the smoothed loss is exactly 0.
  perfect, _, _ = losses.compute_weighted_cross_entropy(
      jnp.log(jnp.array(q))[None, None], jnp.array([[0]]),
      label_smoothing=0.3)
  assert float(perfect) == pytest.approx(0.0, abs=1e-6)


def test_hard_target_path_equals_soft_target_formula():
  # label_smoothing 0 skips the one-hot; it must equal cross_entropy_with_logits
  # on one-hot targets (the soft path), z-loss included.
  rng = np.random.RandomState(0)
  logits = jnp.asarray(rng.normal(0, 3, (2, 3, 7)), jnp.float32)
  targets = jnp.asarray(rng.randint(0, 7, (2, 3)))
  loss, z, _ = losses.compute_weighted_cross_entropy(logits, targets,
                                                     z_loss=1e-2)
  soft, soft_z = losses.cross_entropy_with_logits(
      logits, jax.nn.one_hot(targets, 7), 1e-2)
  assert float(loss) == pytest.approx(float(jnp.sum(soft)), rel=1e-6)
  assert float(z) == pytest.approx(float(jnp.sum(soft_z)), rel=1e-6)
