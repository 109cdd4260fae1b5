"""Trainer: pure jit-compiled step functions and a thin, resumable loop.

`make_train_step` / `make_eval_step` build pure functions of
(state, batch, rng); they are compiled with explicit in/out shardings on a
('data', 'model') mesh from `train/partitioning.py` (params and optimizer
state placed by logical axis rules, batches split over 'data'). The dropout
RNG of step s is `jax.random.fold_in(base_rng, s)`, so a run resumed at step
k draws the same RNGs as an uninterrupted one.

`train(...)` is the loop: restore-or-init, then per step fetch a batch, step,
log, evaluate (`training_eval/<task>`), checkpoint. Each section calls a named
function below. To change what a step computes (e.g. an extra loss), subclass
`models.EncoderDecoderModel` and override `loss_fn`; the trainer only calls
the model's contract (`get_initial_variables`, `loss_fn`).
"""

import dataclasses
import math
import os
import time
from typing import Any, Callable, Mapping, Optional

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import tensorflow as tf

from crs_tasks import errors
from train import checkpointing
from train import input_pipeline
from train import partitioning
from train import summaries

Array = jax.Array
PyTree = Any
Batch = Mapping[str, Array]
StepFn = Callable[..., tuple["TrainState", dict[str, Array]]]


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """The loss or gradient norm became NaN/Inf; nothing after it was saved.

  The message names the last good checkpoint: one whose weights are finite
  and give a finite loss and gradient norm on the batch after it (checked by
  `make_check_step` before every save), so rerunning the same command with a
  lower learning rate resumes from it.
  """


@flax.struct.dataclass
class TrainState:
  step: Array  # int32 scalar: optimizer updates applied so far.
  params: PyTree
  opt_state: PyTree


@dataclasses.dataclass
class TrainResult:
  """What `train` returns.

  Attributes:
    model_dir: where checkpoints and summaries were written.
    step: the final step.
    losses: `{step: train loss per target token}` for the steps run by this
      call (after a resume, only the resumed steps).
    eval_metrics: `{step: {"training_eval/<task>/<metric>": value}}`.
    params: the final params (host-fetchable jax arrays).
    start_step: the step this call started from (0 unless resumed).
    model: the trained model (for decoding after training).
  """

  model_dir: str
  step: int
  losses: dict[int, float]
  eval_metrics: dict[int, dict[str, float]]
  params: PyTree
  start_step: int = 0
  model: Any = None


# ---------------------------------------------------------------------------
# Pure step functions.
# ---------------------------------------------------------------------------


def step_rng(base_rng: Array, step: Array) -> Array:
  """The dropout RNG of step `step`: `fold_in(base_rng, step)`."""
  return jax.random.fold_in(base_rng, step)


# Model metrics that add up over examples (t5x: sums over target tokens);
# all others (accuracy, nonpadding_fraction, ...) are per-batch means.
ADDITIVE_METRICS = ("loss", "z_loss", "cross_ent_loss")


def is_additive(name: str) -> bool:
  """True for metrics that sum over examples (losses and `num_*` counts)."""
  return name in ADDITIVE_METRICS or name.startswith("num_")


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

  The batch is split into `num_microbatches` equal slices along axis 0; their
  losses, gradients and additive metrics (`is_additive`) are summed and the
  other metrics averaged. For a loss
  that is a sum over target tokens (`loss_normalizing_factor=None`) or
  divided by a constant, the sum equals the full-batch loss and gradient;
  microbatch i uses dropout RNG `fold_in(rng, i)`.

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
      k: v if is_additive(k) else v / num_microbatches
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


# ---------------------------------------------------------------------------
# State creation and sharding.
# ---------------------------------------------------------------------------


def _input_shapes(batch_size: int, lengths: Mapping[str, int]):
  return {
      "encoder_input_tokens": (batch_size, lengths["inputs"]),
      "decoder_input_tokens": (batch_size, lengths["targets"]),
  }


def create_train_state(
    model: Any,
    optimizer: optax.GradientTransformation,
    *,
    mesh: jax.sharding.Mesh,
    init_rng: Array,
    input_shapes: Mapping[str, tuple[int, ...]],
) -> tuple[TrainState, TrainState]:
  """Initializes params and optimizer state directly in their shardings.

  Args:
    model: an `EncoderDecoderModel`.
    optimizer: optax transformation.
    mesh: the ('data', 'model') mesh.
    init_rng: parameter-init RNG.
    input_shapes: model feature shapes for initialization.

  Returns:
    `(state, state_shardings)`, the second a TrainState of NamedShardings.
  """

  def init_variables():
    return model.get_initial_variables(init_rng, input_shapes)

  param_shardings = partitioning.param_shardings(
      jax.eval_shape(init_variables), mesh)
  params = jax.jit(
      lambda: nn.meta.unbox(init_variables()["params"]),
      out_shardings=param_shardings,
  )()
  opt_shardings = partitioning.opt_state_shardings(
      jax.eval_shape(optimizer.init, params), params, param_shardings, mesh)
  opt_state = jax.jit(optimizer.init, out_shardings=opt_shardings)(params)
  state = TrainState(
      step=jax.device_put(jnp.zeros((), jnp.int32),
                          partitioning.replicated(mesh)),
      params=params,
      opt_state=opt_state,
  )
  shardings = jax.tree.map(lambda x: x.sharding, state)
  return state, shardings


def compile_steps(
    model: Any,
    optimizer: optax.GradientTransformation,
    *,
    mesh: jax.sharding.Mesh,
    state_shardings: TrainState,
    num_microbatches: int = 1,
    learning_rate_fn: Optional[optax.Schedule] = None,
) -> tuple[StepFn, Callable[..., dict[str, Array]]]:
  """jit-compiles train and eval steps with explicit in/out shardings.

  The steps are traced under the mesh and `partitioning.LOGICAL_AXIS_RULES`,
  so the network's `nn.with_logical_constraint` activation hints become
  sharding constraints (GSPMD propagates the rest).
  """
  data = partitioning.batch_sharding(mesh)
  replicated = partitioning.replicated(mesh)
  train_step = jax.jit(
      make_train_step(
          model.loss_fn,
          optimizer,
          num_microbatches=num_microbatches,
          learning_rate_fn=learning_rate_fn,
      ),
      in_shardings=(state_shardings, data, replicated),
      out_shardings=(state_shardings, replicated),
      donate_argnums=(0,),
  )
  eval_step = jax.jit(
      make_eval_step(model.loss_fn),
      in_shardings=(state_shardings.params, data),
      out_shardings=replicated,
  )
  return (partitioning.under_rules(train_step, mesh),
          partitioning.under_rules(eval_step, mesh))


def compile_check_step(
    model: Any,
    *,
    mesh: jax.sharding.Mesh,
    state_shardings: TrainState,
    num_microbatches: int = 1,
) -> Callable[..., dict[str, Array]]:
  """jit-compiles `make_check_step` like the train step (nothing donated)."""
  data = partitioning.batch_sharding(mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  check_step = jax.jit(
      make_check_step(model.loss_fn, num_microbatches=num_microbatches),
      in_shardings=(state_shardings.params, data, replicated,
                    state_shardings.step),
      out_shardings=replicated,
  )
  return partitioning.under_rules(check_step, mesh)


# ---------------------------------------------------------------------------
# Loop sections.
# ---------------------------------------------------------------------------


def host_metrics(metrics: Mapping[str, Array]) -> dict[str, float]:
  """Device metrics -> python floats, plus per-token loss."""
  out = {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}
  tokens = out.get("num_target_tokens", 0.0)
  if tokens:
    out["loss_per_target_token"] = out["loss"] / tokens
  return out


def _last_good(last_ckpt: Optional[int]) -> str:
  if last_ckpt is None:
    return "No checkpoint was saved"
  return f"The last good checkpoint is step {last_ckpt}"


def _restart_hint(last_ckpt: Optional[int]) -> str:
  resume = (f"it resumes from step {last_ckpt}" if last_ckpt is not None
            else "no checkpoint was kept, so it starts from scratch")
  return ("lower LEARNING_RATE (or check the data), then rerun the same "
          f"command: {resume}")


def check_finite(step: int, metrics: Mapping[str, float], last_ckpt) -> None:
  """Raises NonFiniteLossError if the loss or grad norm of `step` is not
  finite."""
  for name in ("loss", "grad_norm"):
    value = metrics.get(name, 0.0)
    if not math.isfinite(value):
      label = "training loss" if name == "loss" else "gradient norm"
      raise NonFiniteLossError(
          f"{label} is {value} at step {step}; stopping without saving. "
          f"{_last_good(last_ckpt)}",
          fix=_restart_hint(last_ckpt))


def check_before_save(step: int, metrics: Mapping[str, float],
                      last_ckpt: Optional[int]) -> None:
  """Raises NonFiniteLossError if the weights after `step` must not be saved.

  Args:
    step: the step whose weights are about to be saved.
    metrics: `check_step` on them and the next batch (host floats).
    last_ckpt: the last checkpoint saved, named in the message.
  """
  problems = []
  if metrics["params_finite"] != 1.0:
    problems.append("some weights are not finite")
  for name, label in (("loss", "next loss"), ("grad_norm",
                                               "next gradient norm")):
    if not math.isfinite(metrics[name]):
      problems.append(f"their {label} is {metrics[name]}")
  if problems:
    raise NonFiniteLossError(
        f"the weights after step {step} are not saved: "
        f"{', '.join(problems)}. {_last_good(last_ckpt)}",
        fix=_restart_hint(last_ckpt))


def run_training_eval(
    eval_step: Callable[..., dict[str, Array]],
    params: PyTree,
    datasets: Mapping[str, tf.data.Dataset],
    *,
    batch_size: int,
    data_sharding: jax.sharding.Sharding,
    max_batches: Optional[int] = None,
) -> dict[str, float]:
  """Token-weighted eval metrics per task, named `training_eval/<task>/...`.

  Args:
    eval_step: compiled `eval_step(params, batch)`.
    params: model params.
    datasets: `{task: batched dataset}` from `get_eval_datasets`.
    batch_size: rows per compiled batch (the last batch is zero-padded).
    data_sharding: sharding of batches.
    max_batches: per-task cap (None: the whole split).

  Returns:
    `{"training_eval/<task>/loss_per_target_token": ..., ".../accuracy":
    ..., ".../num_target_tokens": ...}`; additive metrics are divided by the
    target tokens, means are weighted by them.
  """
  out = {}
  for task, ds in datasets.items():
    if max_batches is not None:
      ds = ds.take(max_batches)
    totals: dict[str, float] = {}
    for batch in ds.as_numpy_iterator():
      batch = input_pipeline.pad_batch(batch, batch_size)
      metrics = host_metrics(
          eval_step(params, jax.device_put(batch, data_sharding)))
      for name, value in metrics.items():
        # Means are weighted by the batch's tokens (padded rows have none).
        weight = 1.0 if is_additive(name) else metrics["num_target_tokens"]
        totals[name] = totals.get(name, 0.0) + value * weight
    tokens = totals.get("num_target_tokens", 0.0)
    if not tokens:
      continue
    prefix = f"training_eval/{task}/"
    for name, value in totals.items():
      if name.startswith("num_"):
        out[prefix + name] = value
      elif is_additive(name):
        out[prefix + name + "_per_target_token"] = value / tokens
      elif name != "loss_per_target_token":
        out[prefix + name] = value / tokens
  return out


def _write_eval(writers, model_dir, step, metrics):
  by_task: dict[str, dict[str, float]] = {}
  for name, value in metrics.items():
    _, task, metric = name.split("/", 2)
    by_task.setdefault(task, {})[metric] = value
  for task, scalars in by_task.items():
    key = f"training_eval/{task}"
    if key not in writers:
      writers[key] = summaries.MetricWriter(model_dir, key)
    writers[key].write_scalars(step, scalars)


def train(
    *,
    model: Any,
    optimizer: optax.GradientTransformation,
    train_dataset_cfg: input_pipeline.DatasetConfig,
    model_dir: str,
    total_steps: int,
    train_eval_dataset_cfg: Optional[input_pipeline.DatasetConfig] = None,
    eval_period: int = 1000,
    eval_steps: Optional[int] = 20,
    checkpoint_period: int = 1000,
    keep_checkpoints: Optional[int] = 3,
    num_microbatches: int = 1,
    num_partitions: int = 1,
    mesh_shape: Optional[tuple[int, int]] = None,
    initial_checkpoint_path: Optional[str] = None,
    learning_rate_fn: Optional[optax.Schedule] = None,
    random_seed: int = 0,
    log_period: int = 10,
    gin_config_str: Optional[str] = None,
    restore_fallback: bool = False,
) -> TrainResult:
  """Trains `model` to `total_steps`, resuming from MODEL_DIR if possible.

  Args:
    model: an `EncoderDecoderModel`.
    optimizer: optax transformation (bound in gin).
    train_dataset_cfg: training data (shuffled, repeated forever).
    model_dir: output directory (checkpoints, summaries, config files).
    total_steps: train until this step.
    train_eval_dataset_cfg: data for `training_eval/<task>` metrics.
    eval_period: steps between training evals (and at the end).
    eval_steps: batches per task per training eval (None: all).
    checkpoint_period: steps between checkpoints (and at the end).
    keep_checkpoints: newest checkpoints kept (None: all).
    num_microbatches: gradient-accumulation slices per batch.
    num_partitions: model-parallel size (mesh 'model' axis).
    mesh_shape: explicit `(data, model)` mesh shape; overrides
      num_partitions.
    initial_checkpoint_path: params to start from when MODEL_DIR has no
      checkpoint (ours, or a Hugging Face T5 checkpoint).
    learning_rate_fn: the optimizer's schedule, for the `learning_rate`
      summary.
    random_seed: seeds parameter init and dropout (the data order is
      seeded by `train_dataset_cfg.seed`).
    log_period: steps between progress lines and train summaries.
    gin_config_str: operative gin config to save as MODEL_DIR/config.gin.
    restore_fallback: when the latest checkpoint is unreadable, move it
      aside (`checkpoints/<step>.unreadable`) and resume from the previous
      one, instead of stopping with the command that does it.

  Returns:
    A `TrainResult` (per-step losses, eval metrics, final params).

  Raises:
    NonFiniteLossError: the loss or gradient norm became NaN/Inf, or the
      weights about to be saved are not finite or give a non-finite loss or
      gradient norm on the next batch (the last good checkpoint is kept and
      named; nothing after it is saved).
  """
  # ------------------------------ Setup ------------------------------------
  # A wrong task name fails here, before anything is written to MODEL_DIR.
  input_pipeline.get_provider(train_dataset_cfg)
  # An unprepared dataset fails here too ("run prepare first").
  input_pipeline.check_prepared(train_dataset_cfg)  # Before any work.
  checkpointing.check_writable(model_dir)
  checkpointing.save_model_files(model_dir, model)
  if gin_config_str is not None:
    checkpointing.save_gin_config(model_dir, gin_config_str)
  mesh = partitioning.make_mesh(
      num_partitions=num_partitions, mesh_shape=mesh_shape
  )
  init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(random_seed))
  batch_size = train_dataset_cfg.batch_size
  state, shardings = create_train_state(
      model,
      optimizer,
      mesh=mesh,
      init_rng=init_rng,
      input_shapes=_input_shapes(
          batch_size, train_dataset_cfg.task_feature_lengths),
  )
  train_step, eval_step = compile_steps(
      model,
      optimizer,
      mesh=mesh,
      state_shardings=shardings,
      num_microbatches=num_microbatches,
      learning_rate_fn=learning_rate_fn,
  )
  check_step = compile_check_step(
      model, mesh=mesh, state_shardings=shardings,
      num_microbatches=num_microbatches)
  data_sharding = partitioning.batch_sharding(mesh)

  # ------------------------- Restore or initialize -------------------------
  manager = checkpointing.CheckpointManager(model_dir, keep=keep_checkpoints)
  manager.fallback_hint = (
      ", or rerun with --gin.RESTORE_FALLBACK=True to do that and resume "
      "from step {previous}")
  state, position = restore_or_initialize(
      manager, state, shardings, initial_checkpoint_path,
      getattr(model.module, "config", None), restore_fallback)
  start_step = int(state.step)
  last_ckpt = manager.latest_step()
  batches = input_pipeline.BatchIterator(
      lambda: input_pipeline.get_dataset(train_dataset_cfg), position
  )
  eval_datasets = {}
  if train_eval_dataset_cfg is not None and eval_period:
    eval_datasets = input_pipeline.get_eval_datasets(train_eval_dataset_cfg)

  # ------------------------------ Loop -------------------------------------
  writers = {"train": summaries.MetricWriter(model_dir, "train")}
  result = TrainResult(model_dir, start_step, {}, {}, None, start_step, model)
  timer = _Timer(start_step)
  logging.info("training %s from step %d to %d", model_dir, start_step,
               total_steps)
  peeked = None  # The next batch, fetched early to check a checkpoint.
  try:
    for step in range(start_step + 1, total_steps + 1):
      batch = peeked if peeked is not None else jax.device_put(
          next(batches), data_sharding)
      peeked = None
      state, metrics = train_step(state, batch, dropout_rng)
      metrics = host_metrics(metrics)
      check_finite(step, metrics, last_ckpt)
      result.losses[step] = metrics.get(
          "loss_per_target_token", metrics["loss"])
      timer.add(metrics)
      if step % log_period == 0 or step == total_steps:
        _log_progress(writers["train"], step, total_steps, metrics, timer)
      if eval_datasets and (step % eval_period == 0 or step == total_steps):
        eval_metrics = run_training_eval(
            eval_step, state.params, eval_datasets, batch_size=batch_size,
            data_sharding=data_sharding, max_batches=eval_steps)
        result.eval_metrics[step] = eval_metrics
        _write_eval(writers, model_dir, step, eval_metrics)
        logging.info("step %d training eval: %s", step, eval_metrics)
      if step % checkpoint_period == 0 or step == total_steps:
        # Save only weights that are finite and whose next step is: run
        # that step's loss and gradient (no update) on the next batch.
        position = batches.position
        peeked = jax.device_put(next(batches), data_sharding)
        check_before_save(
            step, host_metrics(check_step(state.params, peeked, dropout_rng,
                                          state.step)), last_ckpt)
        manager.save(step, params=state.params, opt_state=state.opt_state,
                     data_position=position)
        last_ckpt = step
  finally:
    manager.close()
    for writer in writers.values():
      writer.close()
  result.step = int(state.step)
  result.params = state.params
  return result


def restore_or_initialize(
    manager: checkpointing.CheckpointManager,
    state: TrainState,
    shardings: TrainState,
    initial_checkpoint_path: Optional[str],
    model_config: Any = None,
    restore_fallback: bool = False,
) -> tuple[TrainState, int]:
  """Latest checkpoint of MODEL_DIR, else initial params, else fresh init.

  An unreadable latest checkpoint raises `UnreadableCheckpointError` (step,
  previous step, command); with `restore_fallback` it is moved aside to
  `<step>.unreadable` (never deleted) and the previous one is used.

  Returns:
    `(state, data_position)`.
  """
  step = manager.latest_step()
  while step is not None:
    try:
      params, opt_state, meta = manager.restore(
          step, abstract_params=state.params,
          abstract_opt_state=state.opt_state)
      break
    except checkpointing.UnreadableCheckpointError as e:
      if not restore_fallback or e.previous is None:
        raise
      moved = manager.move_aside(step)
      print(f"{e.path}: checkpoint step {step} is unreadable; moved it to "
            f"{moved} (not deleted) and resuming from step {e.previous}.",
            flush=True)
      step = manager.latest_step()
  if step is not None:
    logging.info("resumed from %s/%d (data position %d)", manager.directory,
                 step, meta["data_position"])
    state = TrainState(
        step=jax.device_put(jnp.asarray(step, jnp.int32), shardings.step),
        params=params, opt_state=opt_state)
    return state, int(meta["data_position"])
  if initial_checkpoint_path:
    logging.info("initializing params from %s", initial_checkpoint_path)
    state = state.replace(params=checkpointing.load_initial_params(
        initial_checkpoint_path, state.params, shardings.params,
        model_config))
  return state, 0


class _Timer:
  """Recent throughput for progress lines (tokens/s, seconds/step)."""

  def __init__(self, step: int):
    self.start = time.perf_counter()
    self.last_time, self.last_step = self.start, step
    self.tokens = self.examples = 0.0

  def add(self, metrics: Mapping[str, float]) -> None:
    self.tokens += metrics.get("num_target_tokens", 0.0) + metrics.get(
        "num_input_tokens", 0.0)
    self.examples += metrics.get("num_examples", 0.0)

  def lap(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    seconds = max(now - self.last_time, 1e-9)
    steps = max(step - self.last_step, 1)
    out = {
        "timing/seconds_per_step": seconds / steps,
        "timing/tokens_per_second": self.tokens / seconds,
        "timing/seqs_per_second": self.examples / seconds,
    }
    self.last_time, self.last_step = now, step
    self.tokens = self.examples = 0.0
    return out


def _log_progress(writer, step, total_steps, metrics, timer):
  timing = timer.lap(step)
  scalars = {k: v for k, v in metrics.items() if not k.startswith("num_")}
  scalars.update(timing)
  writer.write_scalars(step, scalars)
  line = summaries.progress_line(
      step=step,
      total_steps=total_steps,
      loss=metrics.get("loss_per_target_token", metrics["loss"]),
      tokens_per_second=timing["timing/tokens_per_second"],
      seconds_per_step=timing["timing/seconds_per_step"],
      learning_rate=metrics.get("learning_rate"),
  )
  print(line, flush=True)

