"""Trainer: the jit-compiled steps and a thin, resumable loop.

The pure step functions (`make_train_step`, `make_eval_step`,
`make_check_step`, `TrainState`) live in `train/steps.py`; here they are
compiled with explicit in/out shardings on a ('data', 'model') mesh from
`train/partitioning.py` (params and optimizer state placed by logical axis
rules, batches split over 'data'). The dropout RNG of step s is
`jax.random.fold_in(base_rng, s)`, so a run resumed at step k draws the
same RNGs as an uninterrupted one.

`train(...)` is the loop: restore-or-init, then per step fetch a batch, step,
log, evaluate (`training_eval/<task>`), checkpoint. Each section calls a named
function below. To change what a step computes (e.g. an extra loss), subclass
`models.EncoderDecoderModel` and override `loss_fn`; the trainer only calls
the model's contract (`get_initial_variables`, `loss_fn`).
"""

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import seqio
import tensorflow as tf

from train import checkpointing
from train import distributed
from train import finite_checks
from train import initialization
from train import input_pipeline
from train import partitioning
from train import run_dir
from train import steps
from train import summaries
from train import training_eval

Array = jax.Array
PyTree = Any


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
# State creation and sharding.
# ---------------------------------------------------------------------------


def _input_shapes(cfg: input_pipeline.DatasetConfig):
  """Model feature shapes of one global batch of `cfg`, for the init."""
  lengths = cfg.task_feature_lengths
  return {
      "encoder_input_tokens": (cfg.batch_size, lengths["inputs"]),
      "decoder_input_tokens": (cfg.batch_size, lengths["targets"]),
  }


def create_train_state(
    model: Any,
    optimizer: optax.GradientTransformation,
    *,
    mesh: jax.sharding.Mesh,
    init_rng: Array,
    input_shapes: Mapping[str, tuple[int, ...]],
) -> tuple[steps.TrainState, steps.TrainState]:
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
  state = steps.TrainState(
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
    state_shardings: steps.TrainState,
    num_microbatches: int = 1,
    learning_rate_fn: Optional[optax.Schedule] = None,
) -> tuple[steps.StepFn, Callable[..., dict[str, Array]]]:
  """jit-compiles train and eval steps with explicit in/out shardings.

  The steps are traced under the mesh and `partitioning.LOGICAL_AXIS_RULES`,
  so the network's `nn.with_logical_constraint` activation hints become
  sharding constraints (GSPMD propagates the rest).
  """
  data = partitioning.batch_sharding(mesh)
  replicated = partitioning.replicated(mesh)
  train_step = jax.jit(
      steps.make_train_step(
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
      steps.make_eval_step(model.loss_fn),
      in_shardings=(state_shardings.params, data),
      out_shardings=replicated,
  )
  return (partitioning.under_rules(train_step, mesh),
          partitioning.under_rules(eval_step, mesh))


def compile_check_step(
    model: Any,
    *,
    mesh: jax.sharding.Mesh,
    state_shardings: steps.TrainState,
    num_microbatches: int = 1,
) -> Callable[..., dict[str, Array]]:
  """jit-compiles `make_check_step` like the train step (nothing donated)."""
  data = partitioning.batch_sharding(mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  check_step = jax.jit(
      steps.make_check_step(model.loss_fn, num_microbatches=num_microbatches),
      in_shardings=(state_shardings.params, data, replicated,
                    state_shardings.step),
      out_shardings=replicated,
  )
  return partitioning.under_rules(check_step, mesh)


# ---------------------------------------------------------------------------
# Loop sections.
# ---------------------------------------------------------------------------


# How an unreadable checkpoint's error tells to resume from the previous one.
_FALLBACK_HINT = (", or rerun with --gin.RESTORE_FALLBACK=True to do that "
                  "and resume from step {previous}")


class TrainingInterrupted(KeyboardInterrupt):
  """Ctrl-C (SIGINT) stopped training; pending saves were finished.

  Attributes:
    model_dir: the run directory.
    step: the last step trained, or None before the first.
    checkpoint: the last checkpoint's step, or None.
    checkpoint_path: its directory, or None.
  """

  def __init__(self, model_dir: str, step: Optional[int],
               checkpoint: Optional[int], checkpoint_path: Optional[str]):
    self.model_dir, self.step = model_dir, step
    self.checkpoint, self.checkpoint_path = checkpoint, checkpoint_path
    where = (f"the last checkpoint is step {checkpoint} "
             f"({checkpoint_path})" if checkpoint is not None else
             "no checkpoint was written yet")
    at = f" at step {step}" if step is not None else ""
    super().__init__(f"training interrupted{at}; {where}")


def _check_inputs_and_write_model_files(
    model: Any, optimizer: optax.GradientTransformation, model_dir: str,
    train_dataset_cfg: input_pipeline.DatasetConfig,
    gin_config_str: Optional[str]) -> Optional[run_dir.RunLock]:
  """Fails on a wrong task, unprepared data or MODEL_DIR before any work.

  Returns:
    The run directory's lock, held (process 0), or None (other processes).
  """
  # A wrong task name fails here, before anything is written to MODEL_DIR.
  input_pipeline.get_provider(train_dataset_cfg)
  # An unprepared dataset fails here too ("run prepare first").
  input_pipeline.check_prepared(train_dataset_cfg)
  if not distributed.is_primary():  # Files that exist once: process 0's.
    return None
  # Read-only checks first: a run of another size touches nothing.
  run_dir.check_compatible(model_dir,
                           getattr(getattr(model, "module", None), "config",
                                   None))
  if checkpointing.saved_steps(
      os.path.join(model_dir, checkpointing.CHECKPOINTS_DIR)):
    checkpointing.check_same_optimizer(
        model_dir, _abstract_opt_state(model, optimizer, train_dataset_cfg),
        checkpointing.optimizer_binding(gin_config_str))
  checkpointing.check_writable(model_dir)
  lock = run_dir.RunLock(model_dir).acquire()
  try:
    checkpointing.save_model_files(model_dir, model)
    if gin_config_str is not None:
      checkpointing.save_gin_config(model_dir, gin_config_str)
  except BaseException:
    lock.release()
    raise
  return lock


def _abstract_opt_state(
    model: Any, optimizer: optax.GradientTransformation,
    train_dataset_cfg: input_pipeline.DatasetConfig) -> PyTree:
  """The shapes of `optimizer.init(params)`, computing no array."""
  variables = jax.eval_shape(lambda: model.get_initial_variables(
      jax.random.PRNGKey(0), _input_shapes(train_dataset_cfg)))
  return jax.eval_shape(optimizer.init, nn.meta.unbox(variables["params"]))


def _save_checked(
    manager: checkpointing.CheckpointManager,
    step: int,
    state: steps.TrainState,
    batches: input_pipeline.BatchIterator,
    last_ckpt: Optional[int],
    check_step: Callable[..., dict[str, Array]],
    dropout_rng: Array,
    data_sharding: jax.sharding.Sharding,
    layout: distributed.DataLayout,
) -> steps.Batch:
  """Saves `state` at `step` if its weights and their next step are finite.

  Runs the next step's loss and gradient (no update) on the next batch,
  which is returned so that the loop trains on it.

  Raises:
    finite_checks.NonFiniteLossError: the weights must not be saved.
  """
  position = batches.position
  peeked = distributed.global_batch(next(batches), data_sharding, layout)
  finite_checks.check_before_save(
      step, summaries.host_metrics(
          check_step(state.params, peeked, dropout_rng, state.step)),
      last_ckpt)
  manager.save(step, params=state.params, opt_state=state.opt_state,
               data_position=position, num_input_shards=layout.num_shards)
  return peeked


def _open_data(
    train_dataset_cfg: input_pipeline.DatasetConfig,
    train_eval_dataset_cfg: Optional[input_pipeline.DatasetConfig],
    layout: distributed.DataLayout,
    position: int,
) -> tuple[input_pipeline.BatchIterator, Mapping[str, tf.data.Dataset]]:
  """This process's training batches (from `position`) and eval datasets.

  Each process reads only its input shards and builds its rows of the
  global batch; the training eval reads its process group's shard.
  """
  batches = input_pipeline.BatchIterator(
      lambda: input_pipeline.get_local_dataset(
          train_dataset_cfg, shard_ids=layout.shard_ids,
          num_shards=layout.num_shards), position)
  eval_datasets = input_pipeline.get_eval_datasets(
      train_eval_dataset_cfg,
      shard_info=seqio.ShardInfo(layout.group_index, layout.num_groups),
      batch_size=layout.local_batch_size) if (
          train_eval_dataset_cfg is not None) else {}
  return batches, eval_datasets


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
    num_input_shards: Optional[int] = None,
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
    mesh_shape: explicit `(data, model)` mesh shape; overrides num_partitions.
    num_input_shards: input shards of each global batch (None: one per
      data-parallel process group; `distributed.data_layout`). Set it to
      give runs on different numbers of processes the same batches.
    initial_checkpoint_path: params to start from when MODEL_DIR has no
      checkpoint (ours, or a Hugging Face T5 checkpoint).
    learning_rate_fn: the optimizer's schedule, for the `learning_rate` summary.
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
    finite_checks.NonFiniteLossError: the loss or gradient norm became
      NaN/Inf, or the weights about to be saved are not finite or give a
      non-finite loss or gradient norm on the next batch (the last good
      checkpoint is kept and named; nothing after it is saved).
  """
  # ------------------------------ Setup ------------------------------------
  lock = _check_inputs_and_write_model_files(
      model, optimizer, model_dir, train_dataset_cfg, gin_config_str)
  try:
    return _setup_and_loop(
        model=model, optimizer=optimizer,
        train_dataset_cfg=train_dataset_cfg, model_dir=model_dir,
        total_steps=total_steps,
        train_eval_dataset_cfg=train_eval_dataset_cfg,
        eval_period=eval_period, eval_steps=eval_steps,
        checkpoint_period=checkpoint_period,
        keep_checkpoints=keep_checkpoints,
        num_microbatches=num_microbatches, num_partitions=num_partitions,
        mesh_shape=mesh_shape, num_input_shards=num_input_shards,
        initial_checkpoint_path=initial_checkpoint_path,
        learning_rate_fn=learning_rate_fn, random_seed=random_seed,
        log_period=log_period, restore_fallback=restore_fallback)
  finally:
    if lock is not None:
      lock.release()


def _setup_and_loop(
    *, model, optimizer, train_dataset_cfg, model_dir, total_steps,
    train_eval_dataset_cfg, eval_period, eval_steps, checkpoint_period,
    keep_checkpoints, num_microbatches, num_partitions, mesh_shape,
    num_input_shards, initial_checkpoint_path, learning_rate_fn,
    random_seed, log_period, restore_fallback) -> TrainResult:
  """`train` after its checks: mesh, state, restore, data, then the loop."""
  mesh = partitioning.make_mesh(num_partitions=num_partitions,
                                mesh_shape=mesh_shape)
  init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(random_seed))
  layout = distributed.data_layout(mesh, train_dataset_cfg.batch_size,
                                   num_input_shards)
  state, shardings = create_train_state(
      model, optimizer, mesh=mesh, init_rng=init_rng,
      input_shapes=_input_shapes(train_dataset_cfg))
  train_step, eval_step = compile_steps(
      model, optimizer, mesh=mesh, state_shardings=shardings,
      num_microbatches=num_microbatches, learning_rate_fn=learning_rate_fn)
  check_step = compile_check_step(model, mesh=mesh, state_shardings=shardings,
                                  num_microbatches=num_microbatches)

  # ------------------------- Restore or initialize -------------------------
  manager = checkpointing.CheckpointManager(
      model_dir, keep=keep_checkpoints, fallback_hint=_FALLBACK_HINT)
  state, position = initialization.restore_or_initialize(
      manager, state, shardings, initial_checkpoint_path,
      getattr(model.module, "config", None), restore_fallback,
      num_input_shards=layout.num_shards)
  batches, eval_datasets = _open_data(
      train_dataset_cfg, train_eval_dataset_cfg if eval_period else None,
      layout, position)

  # ------------------------------ Loop -------------------------------------
  loop = _LoopConfig(
      model_dir=model_dir, total_steps=total_steps, layout=layout,
      train_step=train_step, eval_step=eval_step, check_step=check_step,
      dropout_rng=dropout_rng, data_sharding=partitioning.batch_sharding(mesh),
      eval_datasets=eval_datasets, eval_period=eval_period,
      eval_steps=eval_steps, checkpoint_period=checkpoint_period,
      log_period=log_period)
  return _loop(loop, model, state, manager, batches)


@dataclasses.dataclass(frozen=True)
class _LoopConfig:
  """What `_loop` runs with, from `train`'s arguments and setup."""

  model_dir: str
  total_steps: int
  layout: distributed.DataLayout
  train_step: steps.StepFn
  eval_step: Callable[..., dict[str, Array]]
  check_step: Callable[..., dict[str, Array]]
  dropout_rng: Array
  data_sharding: jax.sharding.Sharding
  eval_datasets: Mapping[str, tf.data.Dataset]
  eval_period: int
  eval_steps: Optional[int]
  checkpoint_period: int
  log_period: int


def _loop(
    cfg: _LoopConfig,
    model: Any,
    state: steps.TrainState,
    manager: checkpointing.CheckpointManager,
    batches: input_pipeline.BatchIterator,
) -> TrainResult:
  """Runs the steps after `state.step` to `cfg.total_steps`.

  Per step: fetch a batch, step, stop on NaN/Inf, log, evaluate and
  checkpoint on their periods (and at the last step). Closes the checkpoint
  manager and the writers.

  Returns:
    The `TrainResult` of `train`.
  """
  start_step, total_steps = int(state.step), cfg.total_steps
  result = TrainResult(cfg.model_dir, start_step, {}, {}, None, start_step,
                       model)
  last_ckpt = manager.latest_step()
  primary = distributed.is_primary()  # Writes summaries, prints progress.
  writers = {"train": summaries.MetricWriter(cfg.model_dir, "train")
             } if primary else {}
  timer = summaries.Throughput(start_step)
  logging.info("training %s from step %d to %d", cfg.model_dir, start_step,
               total_steps)
  peeked = None  # The next batch, fetched early to check a checkpoint.
  done = start_step or None  # The last step trained.
  interrupted = False
  try:
    for step in range(start_step + 1, total_steps + 1):
      batch = peeked if peeked is not None else distributed.global_batch(
          next(batches), cfg.data_sharding, cfg.layout)
      peeked = None
      state, metrics = cfg.train_step(state, batch, cfg.dropout_rng)
      done = step
      metrics = summaries.host_metrics(metrics)
      finite_checks.check_finite(step, metrics, last_ckpt)
      result.losses[step] = metrics.get(
          "loss_per_target_token", metrics["loss"])
      timer.add(metrics)
      last = step == total_steps
      if primary and (step % cfg.log_period == 0 or last):
        summaries.log_progress(writers["train"], step, total_steps, metrics,
                               timer)
      if cfg.eval_datasets and (step % cfg.eval_period == 0 or last):
        eval_metrics = training_eval.run_training_eval(
            cfg.eval_step, state.params, cfg.eval_datasets,
            batch_size=cfg.layout.local_batch_size,
            data_sharding=cfg.data_sharding, max_batches=cfg.eval_steps,
            layout=cfg.layout)
        result.eval_metrics[step] = eval_metrics
        if primary:
          training_eval.write_eval_metrics(writers, cfg.model_dir, step,
                                           eval_metrics)
        logging.info("step %d training eval: %s", step, eval_metrics)
      if step % cfg.checkpoint_period == 0 or last:
        peeked = _save_checked(manager, step, state, batches, last_ckpt,
                               cfg.check_step, cfg.dropout_rng,
                               cfg.data_sharding, cfg.layout)
        last_ckpt = step
  except KeyboardInterrupt:  # Ctrl-C: finish the save in flight, then stop.
    interrupted = True
  finally:
    manager.close()
    for writer in writers.values():
      writer.close()
  if interrupted:
    saved = checkpointing.saved_steps(manager.directory)
    raise TrainingInterrupted(
        cfg.model_dir, done, saved[-1] if saved else None,
        os.path.join(manager.directory, str(saved[-1])) if saved else None)
  result.step = int(state.step)
  result.params = state.params
  return result
