"""The pure training steps: functions of (state or params, batch, rng).

`make_train_step`, `make_eval_step` and `make_check_step` build pure
functions that `train.trainer` jit-compiles with explicit shardings; they
call only the model's contract (`loss_fn(params, batch, dropout_rng)`). The
dropout RNG of step s is `step_rng(base_rng, s)` (`fold_in`), so a run
resumed at step k draws the same RNGs as an uninterrupted one.
`accumulate_grads` sums a batch's loss and gradient over microbatches.
"""

from typing import Any, Callable, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import optax

from train import summaries

Array = jax.Array
PyTree = Any
Batch = Mapping[str, Array]
StepFn = Callable[..., tuple["TrainState", dict[str, Array]]]


@flax.struct.dataclass
class TrainState:
  step: Array  # int32 scalar: optimizer updates applied so far.
  params: PyTree
  opt_state: PyTree



def step_rng(base_rng: Array, step: Array) -> Array:
  """The dropout RNG of step `step`: `fold_in(base_rng, step)`."""
  return jax.random.fold_in(base_rng, step)


def _batch_base_metrics(batch: Batch) -> dict[str, Array]:
  weights = batch["decoder_loss_weights"]
  return {
      "num_target_tokens": jnp.sum(weights > 0).astype(jnp.float32),
      "num_input_tokens": jnp.sum(
          batch["encoder_input_tokens"] > 0).astype(jnp.float32),
      "num_examples": jnp.sum(
          jnp.any(weights > 0, axis=-1)).astype(jnp.float32),
  }


def accumulate_grads(
    loss_fn: Callable[..., tuple[Array, dict[str, Array]]],
    params: PyTree,
    batch: Batch,
    rng: Array,
    num_microbatches: int = 1,
) -> tuple[Array, PyTree, dict[str, Array]]:
  """Loss, gradient and metrics of `batch`, computed in microbatches.

  The batch is split into `num_microbatches` equal slices along axis 0;
  their losses, gradients and additive metrics (`summaries.is_additive`)
  are summed and the other metrics averaged. For a loss that is a sum over
  target tokens (`loss_normalizing_factor=None`) or divided by a constant,
  the sum equals the full-batch loss and gradient; microbatch i uses
  dropout RNG `fold_in(rng, i)`.

  Args:
    loss_fn: `(params, batch, dropout_rng) -> (loss, metrics)`.
    params: model params.
    batch: dict of `[batch, ...]` arrays.
    rng: dropout RNG of this step.
    num_microbatches: slices; must divide the batch size.

  Returns:
    `(loss, grads, metrics)`.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if num_microbatches <= 1:
    (loss, metrics), grads = grad_fn(params, batch, rng)
    return loss, grads, metrics
  size = jax.tree.leaves(batch)[0].shape[0]
  if size % num_microbatches:
    raise ValueError(
        f"batch size {size} is not divisible by num_microbatches "
        f"{num_microbatches}"
    )
  micro = jax.tree.map(
      lambda x: x.reshape((num_microbatches, -1) + x.shape[1:]), batch
  )

  def body(carry, inputs):
    index, microbatch = inputs
    (loss, metrics), grads = grad_fn(
        params, microbatch, jax.random.fold_in(rng, index)
    )
    return jax.tree.map(jnp.add, carry, (loss, grads, metrics)), None

  first = jax.tree.map(lambda x: x[0], micro)
  zeros = jax.tree.map(
      jnp.zeros_like,
      jax.eval_shape(lambda: grad_fn(params, first, rng)),
  )
  (loss, metrics), grads = zeros
  carry = (loss, grads, metrics)
  (loss, grads, metrics), _ = jax.lax.scan(
      body, carry, (jnp.arange(num_microbatches), micro)
  )
  metrics = {
      k: v if summaries.is_additive(k) else v / num_microbatches
      for k, v in metrics.items()
  }
  return loss, grads, metrics


def make_train_step(
    loss_fn: Callable[..., tuple[Array, dict[str, Array]]],
    optimizer: optax.GradientTransformation,
    *,
    num_microbatches: int = 1,
    learning_rate_fn: Optional[optax.Schedule] = None,
) -> StepFn:
  """Returns the pure `train_step(state, batch, base_rng)`.

  Args:
    loss_fn: the model's `loss_fn(params, batch, dropout_rng)`.
    optimizer: an optax transformation.
    num_microbatches: gradient-accumulation slices per batch.
    learning_rate_fn: schedule of step, only for the `learning_rate` metric.

  Returns:
    `train_step(state, batch, base_rng) -> (new_state, metrics)`.
  """

  def train_step(state: TrainState, batch: Batch, base_rng: Array):
    rng = step_rng(base_rng, state.step)
    loss, grads, metrics = accumulate_grads(
        loss_fn, state.params, batch, rng, num_microbatches
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics)
    metrics.update(_batch_base_metrics(batch))
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.global_norm(grads)
    if learning_rate_fn is not None:
      metrics["learning_rate"] = jnp.asarray(
          learning_rate_fn(state.step), jnp.float32
      )
    new_state = TrainState(
        step=state.step + 1, params=params, opt_state=opt_state
    )
    return new_state, metrics

  return train_step


def make_check_step(
    loss_fn: Callable[..., tuple[Array, dict[str, Array]]],
    *,
    num_microbatches: int = 1,
) -> Callable[..., dict[str, Array]]:
  """Returns `check_step(params, batch, base_rng, step) -> metrics`.

  What the next train step would compute from `params` (same batch, same
  dropout RNG), without updating anything: `loss`, `grad_norm` and
  `params_finite` (1.0 when every parameter is finite). The trainer runs it
  before each save, so a checkpoint is never written from weights that are
  not finite or whose next loss or gradient norm is not.

  Args:
    loss_fn: the model's `loss_fn(params, batch, dropout_rng)`.
    num_microbatches: as in `make_train_step`.

  Returns:
    The pure function.
  """

  def check_step(params: PyTree, batch: Batch, base_rng: Array, step: Array):
    loss, grads, _ = accumulate_grads(
        loss_fn, params, batch, step_rng(base_rng, step), num_microbatches)
    finite = jnp.stack(
        [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)])
    return {
        "loss": loss,
        "grad_norm": optax.global_norm(grads),
        "params_finite": jnp.all(finite).astype(jnp.float32),
    }

  return check_step


def make_eval_step(
    loss_fn: Callable[..., tuple[Array, dict[str, Array]]],
) -> Callable[[PyTree, Batch], dict[str, Array]]:
  """Returns the pure `eval_step(params, batch) -> metrics` (no dropout)."""

  def eval_step(params: PyTree, batch: Batch):
    loss, metrics = loss_fn(params, batch, None)
    metrics = dict(metrics)
    metrics.update(_batch_base_metrics(batch))
    metrics["loss"] = loss
    return metrics

  return eval_step
