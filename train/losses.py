"""Cross-entropy with z-loss and label smoothing, t5x semantics.

`compute_weighted_cross_entropy` returns *sums* over tokens; with
`loss_normalizing_factor=None` the training loss is the summed token loss, as
in t5x (the trainer reports `loss_per_target_token` beside it). A float
factor divides the sums (t5x's `LOSS_NORMALIZING_FACTOR`, e.g. 233472).
"""

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def cross_entropy_with_logits(logits: Array, targets: Array,
                              z_loss: float = 0.0) -> tuple[Array, Array]:
  """Per-token cross-entropy against soft targets, plus z-loss.

  Args:
    logits: [..., vocab].
    targets: [..., vocab] probabilities (one-hot or smoothed).
    z_loss: coefficient of `log(Z)^2`, which keeps the softmax normalizer
      near 1 (Mesh TensorFlow / t5x default 1e-4).

  Returns:
    `(loss, z_loss_term)`, both [...]; `loss` includes the z-loss term.
  """
  log_z = jax.nn.logsumexp(logits, axis=-1)
  log_softmax = logits - log_z[..., None]
  loss = -jnp.sum(targets * log_softmax, axis=-1)
  z_term = z_loss * jnp.square(log_z)
  return loss + z_term, z_term


def compute_weighted_cross_entropy(
    logits: Array,
    targets: Array,
    weights: Optional[Array] = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    loss_normalizing_factor: Optional[float] = None,
) -> tuple[Array, Array, Array]:
  """Summed weighted cross-entropy of integer targets.

  With label smoothing the target puts `1 - label_smoothing` on the label and
  spreads the rest uniformly over the other `vocab - 1` tokens; the entropy of
  that target is subtracted so a perfect model has loss 0.

  Args:
    logits: float [batch, length, vocab].
    targets: int [batch, length].
    weights: [batch, length] loss weights (0 on padding); all ones if None.
    label_smoothing: in [0, 1).
    z_loss: z-loss coefficient.
    loss_normalizing_factor: divides the sums when given.

  Returns:
    `(total_loss, total_z_loss, weight_sum)`, scalars.
  """
  vocab_size = logits.shape[-1]
  logits = logits.astype(jnp.float32)
  if label_smoothing == 0.0:
    # Same value as the soft-target path, without [..., vocab] one-hots.
    log_z = jax.nn.logsumexp(logits, axis=-1)
    label_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)
    z_term = z_loss * jnp.square(log_z)
    loss = log_z - label_logit[..., 0] + z_term
  else:
    confidence = 1.0 - label_smoothing
    low_confidence = (1.0 - confidence) / (vocab_size - 1)
    normalizing_constant = -(
        confidence * jnp.log(confidence)
        + (vocab_size - 1) * low_confidence * jnp.log(low_confidence + 1e-20))
    soft_targets = jax.nn.one_hot(targets, vocab_size) * (
        confidence - low_confidence) + low_confidence
    loss, z_term = cross_entropy_with_logits(logits, soft_targets, z_loss)
    loss = loss - normalizing_constant
  if weights is None:
    weights = jnp.ones(targets.shape, jnp.float32)
  weights = weights.astype(jnp.float32)
  loss, z_term = loss * weights, z_term * weights
  if loss_normalizing_factor is not None:
    loss = loss / loss_normalizing_factor
    z_term = z_term / loss_normalizing_factor
  return jnp.sum(loss), jnp.sum(z_term), jnp.sum(weights)
