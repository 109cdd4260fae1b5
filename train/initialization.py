"""What a run starts from: its last checkpoint, an initial one, or the init.

`restore_or_initialize` resumes from the latest checkpoint of MODEL_DIR
(params, optimizer state, data position); without one it imports the params
of `initial_checkpoint_path` (`load_initial_params`: one of our model or
checkpoint directories, or a Hugging Face T5 checkpoint checked against the
run's model config), and otherwise keeps the freshly initialized state.
"""

import dataclasses
from typing import Any, Optional

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from train import checkpointing
from train import distributed

PyTree = Any


# T5Config fields that may differ between a checkpoint and the run.
_RUN_ONLY_FIELDS = ("dropout_rate", "dtype", "float32_attention_logits",
                    "matmul_dtype")


def load_initial_params(
    path: str,
    params: PyTree,
    param_shardings: PyTree,
    model_config: Any = None,
) -> PyTree:
  """The params of `path` (ours or Hugging Face), placed like `params`.

  Args:
    path: one of our model/checkpoint directories, or a Hugging Face T5
      checkpoint (directory or file) for `hf_import.load_pretrained`.
    params: the freshly initialized params (give shapes and shardings).
    param_shardings: NamedShardings of `params`.
    model_config: the run's T5Config, checked against a Hugging Face
      checkpoint's config (all fields but dropout and dtypes).

  Returns:
    The imported params.

  Raises:
    ValueError: the checkpoint does not match the model config.
  """
  if checkpointing.is_checkpoint_dir(path):
    imported, _ = checkpointing.restore_params(path, params)
    return imported
  # Imported here: it pulls in safetensors.
  from train import hf_import  # pylint: disable=g-import-not-at-top
  hf_config, imported = hf_import.load_pretrained(path)
  if model_config is not None:
    _check_same_config(path, model_config, hf_config)
  imported = nn.meta.unbox(imported)
  _check_same_shapes(path, params, imported)
  return jax.device_put(imported, param_shardings)


def _check_same_config(path: str, expected: Any, got: Any) -> None:
  diffs = [
      f"{f.name}: model {getattr(expected, f.name)!r} vs checkpoint "
      f"{getattr(got, f.name, None)!r}"
      for f in dataclasses.fields(expected)
      if f.name not in _RUN_ONLY_FIELDS
      and getattr(expected, f.name) != getattr(got, f.name, None)
  ]
  if diffs:
    raise ValueError(
        f"{path}: checkpoint config does not match the model gin config: "
        + "; ".join(diffs))


def _check_same_shapes(path: str, expected: PyTree, got: PyTree) -> None:
  flat_expected = flax.traverse_util.flatten_dict(
      flax.core.unfreeze(expected), sep="/")
  flat_got = flax.traverse_util.flatten_dict(
      flax.core.unfreeze(got), sep="/")
  missing = sorted(set(flat_expected) - set(flat_got))
  extra = sorted(set(flat_got) - set(flat_expected))
  bad = sorted(
      k for k in set(flat_expected) & set(flat_got)
      if tuple(flat_expected[k].shape) != tuple(np.shape(flat_got[k]))
  )
  if missing or extra or bad:
    raise ValueError(
        f"{path}: checkpoint does not match the model config: missing "
        f"{missing[:5]}, unexpected {extra[:5]}, shape mismatch {bad[:5]}"
    )


def restore_or_initialize(
    manager: checkpointing.CheckpointManager,
    state: PyTree,
    shardings: PyTree,
    initial_checkpoint_path: Optional[str],
    model_config: Any = None,
    restore_fallback: bool = False,
    *,
    num_input_shards: int = 1,
) -> tuple[PyTree, int]:
  """Latest checkpoint of MODEL_DIR, else initial params, else fresh init.

  `state` is the freshly initialized train state (a flax struct with
  `step`, `params` and `opt_state`); `shardings` the same of NamedShardings.

  An unreadable latest checkpoint raises `UnreadableCheckpointError` (step,
  previous step, command); with `restore_fallback` it is moved aside to
  `<step>.unreadable` (never deleted) and the previous one is used.

  Returns:
    `(state, data_position)`: the position counts batches of every input
    shard (the same on every process).
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
      if distributed.is_primary():  # One process renames; all re-read.
        moved = manager.move_aside(step)
      distributed.sync(f"move_aside_{step}")
      if not distributed.is_primary():
        manager.reload()
        moved = f"{step}{checkpointing.UNREADABLE_SUFFIX}"
      print(f"{e.path}: checkpoint step {step} is unreadable; moved it to "
            f"{moved} (not deleted) and resuming from step {e.previous}.",
            flush=True)
      step = manager.latest_step()
  if step is not None:
    logging.info("resumed from %s/%d (data position %d)", manager.directory,
                 step, meta["data_position"])
    if distributed.is_primary():
      print(f"Resuming from checkpoint step {step} "
            f"({manager.directory}/{step}).", flush=True)
    saved_shards = int(meta.get("num_input_shards", 1))
    if saved_shards != num_input_shards:
      logging.warning(
          "checkpoint %d was trained on %d input shards, this run reads %d: "
          "the data order differs from the uninterrupted run's (set "
          "NUM_INPUT_SHARDS=%d to keep it)", step, saved_shards,
          num_input_shards, saved_shards)
    state = state.replace(
        step=jax.device_put(jnp.asarray(step, jnp.int32), shardings.step),
        params=params, opt_state=opt_state)
    return state, int(meta["data_position"])
  if initial_checkpoint_path:
    logging.info("initializing params from %s", initial_checkpoint_path)
    state = state.replace(params=load_initial_params(
        initial_checkpoint_path, state.params, shardings.params,
        model_config))
  return state, 0
