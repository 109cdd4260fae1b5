"""Checkpoints: orbax train state plus the files that rebuild the model.

Layout of a model directory (`MODEL_DIR`):

  checkpoints/<step>/{params,opt_state,meta}   orbax, written atomically
  model_config.json                            `network.T5Config` fields
  vocabulary.json, spiece.model                the SentencePiece vocabulary
  config.gin                                   the operative gin config

`meta` holds the step and the data-iterator position (batches consumed), so a
restarted run continues with exactly the batches it would have seen.

Faults: a checkpoint that orbax cannot read (a truncated or deleted file in
`checkpoints/<step>/`) raises `UnreadableCheckpointError`, one line naming
the step and offering the previous one (the exact `mv` command, or the
trainer's `restore_fallback`, which moves the bad step aside to
`checkpoints/<step>.unreadable` and says so). Nothing is ever deleted. A
MODEL_DIR that cannot be written is a `UserError` before any work
(`check_writable`). A save that fails (no space left, permission denied)
raises `SaveFailedError` at once, naming the directory, the cause, the last
good step (left intact) and the fix; the half-written step is removed. A
checkpoint whose arrays have other shapes than the model rebuilt from
`model_config.json` is `ModelMismatchError` ("different model size"), not
unreadable: nothing tells the user to move it aside. A resume whose optimizer
state has another structure or shapes than the latest checkpoint's (another
optimizer class or a setting that shapes its state) is
`OptimizerMismatchError` (`check_same_optimizer`, before anything is
written), naming both optimizers; a learning-rate change passes.
`load_model(model_dir)` rebuilds `(EncoderDecoderModel, params, step)` from a
directory alone, for evaluation, inference and probes.
What a run starts from (this module's checkpoints, an initial checkpoint, or
the fresh init) is decided in `train/initialization.py`.

To store more state (e.g. an EMA of the params), add an item name to
`ITEM_NAMES` and a matching entry in `save`/`restore`.
"""

import ast
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import sys
import time
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import seqio

from crs_runtime import errors
from train import run_dir

PyTree = Any

CHECKPOINTS_DIR = "checkpoints"
MODEL_CONFIG_FILE = "model_config.json"
VOCABULARY_FILE = "vocabulary.json"
SPIECE_FILE = "spiece.model"
GIN_CONFIG_FILE = "config.gin"
ITEM_NAMES = ("params", "opt_state", "meta")
UNREADABLE_SUFFIX = ".unreadable"


class UnreadableCheckpointError(errors.UserError):
  """A checkpoint step orbax cannot read (truncated or missing files).

  Attributes:
    step: the unreadable step.
    path: its directory.
    previous: the step before it, or None.
  """

  def __init__(self, step: int, path: str, previous: Optional[int],
               reason: str, hint: str = ""):
    self.step, self.path, self.previous = step, path, previous
    if previous is None:
      fix = (f"no earlier checkpoint exists; move it aside (`mv {path} "
             f"{path}{UNREADABLE_SUFFIX}`, nothing was deleted) to start "
             "again, or restore the file from a backup")
    else:
      fix = (f"use the previous checkpoint, step {previous}: `mv {path} "
             f"{path}{UNREADABLE_SUFFIX}` moves the bad one aside (nothing "
             f"was deleted){hint.format(previous=previous)}")
    super().__init__(
        f"checkpoint step {step} is unreadable or incomplete ({reason})",
        where=path, fix=fix)


def _short_reason(error: BaseException) -> str:
  """The first line of an orbax/tensorstore error, cut to 120 characters."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  text = text.split(". See full TensorStore details")[0]
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= 120 else text[:117] + "..."


def route_closed_loop_callbacks() -> None:
  """Sends the 'Event loop is closed' tracebacks of a failed I/O to the log.

  When one array of a checkpoint cannot be written (a full disk) or read,
  orbax gives up and closes its asyncio loop while tensorstore writes or
  reads of the other arrays are still in flight; each then calls back into
  the closed loop, and Python prints a `RuntimeError: Event loop is closed`
  traceback on stderr as an unraisable exception (`sys.unraisablehook`;
  x32 after a failed restore in issue 11, up to 51 before the one error line
  of a full disk in issue 20, several hundred with more arrays). These come
  before orbax's own error reaches us, so the hook is installed before any
  save or restore. Each one becomes one log line (the log file under a
  command); any other unraisable exception goes to the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, "crs_closed_loop", False):
    return

  def hook(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      logging.warning(
          "storage callback after orbax closed its event loop (a save or "
          "restore failed; its error is reported separately): %s", value)
      return
    previous(unraisable)

  hook.crs_closed_loop = True
  sys.unraisablehook = hook


class ModelMismatchError(run_dir.ModelMismatchError):
  """A readable checkpoint whose arrays have other shapes than the model.

  The checkpoint is intact: the model asked for (from gin, or from the run's
  `model_config.json`) has a different size.
  """

  def __init__(self, step: int, path: str, name: str, saved: Any,
               asked: Any):
    self.step, self.path = step, path
    super().__init__(
        f"different model size: checkpoint step {step} holds {name} of "
        f"shape {tuple(saved)}, the model asks for {tuple(asked)}; the "
        "checkpoint is readable and intact", where=path,
        fix="do not move it; use the model size it was trained with (the "
        f"{MODEL_CONFIG_FILE} written with it), or give a new run directory")


def _saved_metadata(step_dir: str, item: str) -> Optional[PyTree]:
  """The array metadata tree of one item of a checkpoint step, or None.

  None when the item is missing or its metadata cannot be read.
  """
  path = os.path.join(step_dir, item)
  if not os.path.isdir(path):
    return None
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      metadata = checkpointer.metadata(path)
  except Exception:  # pylint: disable=broad-except  # Unreadable: not ours.
    return None
  saved = getattr(metadata, "item_metadata", metadata)
  return getattr(saved, "tree", saved)


def _shape_mismatch(step_dir: str, item: str, abstract: PyTree
                    ) -> Optional[tuple[str, Any, Any]]:
  """`(name, saved shape, asked shape)` of the first array that differs.

  None when the shapes agree or the checkpoint's metadata cannot be read.
  """
  saved = _saved_metadata(step_dir, item)
  if saved is None:
    return None
  flat_saved = {jax.tree_util.keystr(k): v for k, v in
                jax.tree_util.tree_flatten_with_path(saved)[0]}
  for key, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    name = jax.tree_util.keystr(key)
    got = getattr(flat_saved.get(name), "shape", None)
    asked = getattr(leaf, "shape", None)
    if got is not None and asked is not None and (
        tuple(got) != tuple(asked)):
      label = "/".join(str(getattr(k, "key", getattr(k, "idx", k)))
                       for k in key)
      return f"{item}/{label}", got, asked
  return None


class OptimizerMismatchError(errors.UserError):
  """MODEL_DIR's latest checkpoint holds the state of another optimizer.

  The checkpoint is intact: the command's optimizer (its class or the
  settings that shape its state) differs from the one it was trained with.
  """


_OPTIMIZER_BINDING_RE = r"^trainer\.train\.optimizer\s*=\s*(.+)$"


def optimizer_binding(config_text: Optional[str]) -> Optional[str]:
  """The `trainer.train.optimizer` binding of a config.gin text, or None.

  E.g. `"@optax.adafactor()"`, for messages.
  """
  match = re.search(_OPTIMIZER_BINDING_RE, config_text or "", re.M)
  return match.group(1).strip() if match else None


def _plain_shapes(tree: PyTree) -> dict[str, tuple[int, ...]]:
  """`{"0/count": (), "0/v/encoder/...": (128,), ...}` of a state tree.

  Namedtuple fields, dict keys and list indices all become path parts, so
  an optax state and the lists and dicts of its orbax metadata agree.
  """
  out = {}
  for key, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = "/".join(
        str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
        for k in key)
    out[name] = tuple(getattr(leaf, "shape", ()))
  return out


def _state_fields(shapes: dict[str, tuple[int, ...]]) -> str:
  """The state's field names, sorted: `"count, v, v_col, v_row"`."""
  fields = {next((p for p in path.split("/") if not p.isdigit()), path)
            for path in shapes}
  return ", ".join(sorted(fields)) if fields else "none"


def check_same_optimizer(model_dir: str, abstract_opt_state: PyTree,
                         name: Optional[str] = None) -> None:
  """Raises OptimizerMismatchError when the checkpoint's optimizer differs.

  Compares the latest checkpoint's optimizer state (structure and shapes)
  with `abstract_opt_state`. Reads only the checkpoint's metadata; writes
  nothing. A new run, a checkpoint whose metadata cannot be read (the
  restore reports that), or a change that keeps the state's shapes (a
  learning rate) passes.

  Args:
    model_dir: the run directory.
    abstract_opt_state: the command's optimizer state (`jax.eval_shape` of
      `optimizer.init`).
    name: the command's optimizer as gin binds it (`"@optax.adam()"`), for
      the message.
  """
  steps = saved_steps(os.path.join(model_dir, CHECKPOINTS_DIR))
  if not steps:
    return
  step_dir = os.path.join(model_dir, CHECKPOINTS_DIR, str(steps[-1]))
  if os.path.isdir(os.path.join(step_dir, "opt_state")):
    saved = _saved_metadata(step_dir, "opt_state")
    if saved is None:
      return
    held = _plain_shapes(saved)
  else:
    held = {}  # A stateless optimizer (plain SGD) saves none.
  asked = _plain_shapes(abstract_opt_state)
  if held == asked:
    return
  names = [name, None]
  try:
    with open(os.path.join(model_dir, GIN_CONFIG_FILE),
              encoding="utf-8") as f:
      names[1] = optimizer_binding(f.read())
  except OSError:
    pass
  described = []
  for label, shapes in zip(names, (asked, held)):
    state = f"state fields {_state_fields(shapes)}"
    described.append(f"{label} ({state})" if label else state)
  if _state_fields(asked) == _state_fields(held):
    path = next(p for p in sorted(set(asked) | set(held))
                if asked.get(p) != held.get(p))
    described[0] += f", {path} of shape {asked.get(path)}"
    described[1] += f", {path} of shape {held.get(path)}"
  raise OptimizerMismatchError(
      "optimizer state structure differs from the checkpoint: the command "
      f"asks for {described[0]}, the directory holds {described[1]} "
      f"(checkpoint step {steps[-1]}; nothing was written)", where=model_dir,
      fix="resume with the original optimizer settings (in its "
      f"{GIN_CONFIG_FILE}), or give a new --gin.MODEL_DIR with "
      f"--gin.INITIAL_CHECKPOINT_PATH=\"'{model_dir}'\" to start the new "
      "optimizer from these weights")


def _restore_step(directory: str, step: int, steps: list[int], restore,
                  hint: str = "",
                  abstract: Optional[dict[str, PyTree]] = None):
  """`restore()`, turning any orbax failure into UnreadableCheckpointError.

  A checkpoint whose arrays have other shapes than `abstract` (item name ->
  abstract tree) raises `ModelMismatchError` instead, before any read (the
  shapes come from the checkpoint's metadata).
  """
  step_dir = os.path.join(directory, str(step))
  for item, tree in (abstract or {}).items():
    mismatch = _shape_mismatch(step_dir, item, tree)
    if mismatch:
      raise ModelMismatchError(step, step_dir, *mismatch)
  try:
    return restore()
  except (errors.UserError, KeyboardInterrupt):
    raise
  except Exception as e:  # pylint: disable=broad-except
    earlier = [s for s in steps if s < step]
    raise UnreadableCheckpointError(
        step, os.path.join(directory, str(step)),
        max(earlier) if earlier else None, _short_reason(e), hint) from e


def check_writable(model_dir: str) -> None:
  """Raises a UserError when MODEL_DIR cannot be created or written.

  Args:
    model_dir: the run's output directory (created when missing).
  """
  probe = os.path.join(model_dir, f".write_test.{os.getpid()}")
  try:
    os.makedirs(model_dir, exist_ok=True)
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise errors.UserError(
        f"MODEL_DIR is not writable ({e.strerror or e})", where=model_dir,
        fix="choose a writable --gin.MODEL_DIR or fix its permissions"
    ) from None


class SaveFailedError(errors.UserError):
  """Writing a checkpoint failed (no space left, permission denied, ...).

  Attributes:
    step: the step that could not be saved.
    last_good: the newest complete checkpoint step, or None.
  """

  def __init__(self, directory: str, step: int, last_good: Optional[int],
               cause: str, fix: str):
    self.step, self.last_good = step, last_good
    kept = (f"the last good checkpoint, step {last_good}, is intact"
            if last_good is not None else "no earlier checkpoint exists")
    super().__init__(
        f"saving checkpoint step {step} failed ({cause}); training stopped "
        f"and {kept}", where=directory, fix=fix)


# What a failed save's OSError means, and what to do about it.
_SAVE_CAUSES = (
    (errno.ENOSPC, "No space left on device", "no space left on the disk",
     "free space on that disk (or give a --gin.MODEL_DIR on a larger one) "
     "and run the same command again: it resumes from the last good step"),
    (errno.EDQUOT, "Disk quota exceeded", "disk quota exceeded",
     "free space within the quota and run the same command again: it "
     "resumes from the last good step"),
    (errno.EACCES, "Permission denied", "permission denied",
     "make the directory writable again (chmod/chown) and run the same "
     "command again: it resumes from the last good step"),
    (errno.EROFS, "Read-only file system", "read-only file system",
     "remount the disk writable (or copy the run to a writable disk) and "
     "run the same command again: it resumes from the last good step"),
)


def _save_cause(error: BaseException) -> Optional[tuple[str, str]]:
  """`(cause, fix)` when `error` (or what caused it) is a known OSError."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    text = str(error)
    for number, message, cause, fix in _SAVE_CAUSES:
      if (isinstance(error, OSError) and error.errno == number) or (
          message in text):
        return cause, fix
    if isinstance(error, OSError):
      return (error.strerror or type(error).__name__), (
          "fix the disk or directory and run the same command again: it "
          "resumes from the last good step")
    error = error.__cause__ or error.__context__
  return None


class CheckpointManager:
  """Saves and restores (params, opt_state, meta) under MODEL_DIR/checkpoints.

  A thin layer over `orbax.checkpoint.CheckpointManager`: orbax writes each
  step to a temporary directory and renames it when complete, so a run killed
  mid-save leaves the previous checkpoints intact (the temporary directory is
  removed on the next start). Only the newest `keep` steps are kept.
  """

  def __init__(self, model_dir: str, *, keep: Optional[int] = 3,
               fallback_hint: str = ""):
    # Appended to UnreadableCheckpointError's fix ({previous} is filled in).
    self.fallback_hint = fallback_hint
    self.directory = os.path.join(os.path.abspath(model_dir), CHECKPOINTS_DIR)
    route_closed_loop_callbacks()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=ITEM_NAMES
    )

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(
      self,
      step: int,
      *,
      params: PyTree,
      opt_state: PyTree,
      data_position: int,
      num_input_shards: int = 1,
  ) -> None:
    """Saves one step (asynchronously; call `wait` before reading it).

    With several processes every process calls it: each writes its shards of
    the arrays, process 0 the metadata.

    Args:
      step: the step.
      params: the params (jax arrays, possibly spanning processes).
      opt_state: the optimizer state.
      data_position: batches consumed from each input shard.
      num_input_shards: input shards of the global batch
        (`distributed.DataLayout.num_shards`).
    """
    meta = {"step": int(step), "data_position": int(data_position),
            "num_input_shards": int(num_input_shards)}
    items = {
        "params": ocp.args.StandardSave(params),
        "meta": ocp.args.JsonSave(meta),
    }
    if jax.tree.leaves(opt_state):  # e.g. plain SGD has no state to save.
      items["opt_state"] = ocp.args.StandardSave(opt_state)
    last_good = self.latest_step()
    try:
      self._manager.save(int(step), args=ocp.args.Composite(**items),
                         force=True)
      # Synchronous, like t5x: a failed write stops the run at this step.
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      known = _save_cause(e)
      if known is None:
        raise
      self._failed_step = step
      self._remove_partial(step)
      raise SaveFailedError(self.directory, step, last_good, *known) from e

  def _remove_partial(self, step: int) -> bool:
    """Deletes what a failed save of `step` left (orbax's temporary dir);
    True if there was something to delete."""
    try:
      names = os.listdir(self.directory)
    except OSError:
      return False
    found = False
    for name in names:
      if name.startswith(f"{step}.") and "tmp" in name:
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        found = True
    return found

  def restore(
      self,
      step: int,
      *,
      abstract_params: PyTree,
      abstract_opt_state: PyTree,
  ) -> tuple[PyTree, PyTree, dict[str, int]]:
    """Restores `step` into arrays shaped and sharded like the abstract trees.

    Args:
      step: a step in `all_steps()`.
      abstract_params: `jax.ShapeDtypeStruct` tree (with shardings) or arrays.
      abstract_opt_state: the same for the optimizer state.

    Returns:
      `(params, opt_state, meta)`, meta with `step` and `data_position`.
    """
    items = {
        "params": ocp.args.StandardRestore(_abstract(abstract_params)),
        "meta": ocp.args.JsonRestore(),
    }
    has_opt_state = bool(jax.tree.leaves(abstract_opt_state))
    if has_opt_state:
      items["opt_state"] = ocp.args.StandardRestore(
          _abstract(abstract_opt_state))
    restored = _restore_step(
        self.directory, step, self.all_steps(),
        lambda: self._manager.restore(step, args=ocp.args.Composite(**items)),
        self.fallback_hint,
        {"params": abstract_params, "opt_state": abstract_opt_state})
    opt_state = restored.opt_state if has_opt_state else abstract_opt_state
    return restored.params, opt_state, dict(restored.meta)

  def move_aside(self, step: int) -> str:
    """Renames `checkpoints/<step>` to `<step>.unreadable` (never deletes).

    Returns:
      The new path.
    """
    path = os.path.join(self.directory, str(step))
    target = path + UNREADABLE_SUFFIX
    suffix = 1
    while os.path.exists(target):
      target, suffix = f"{path}{UNREADABLE_SUFFIX}.{suffix}", suffix + 1
    os.rename(path, target)
    self._manager.reload()
    return target

  def reload(self) -> None:
    """Re-reads the steps on disk (after another process moved one)."""
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    failed = getattr(self, "_failed_step", None)
    if failed is not None:  # The error was raised already.
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except
        pass
      # Writes still in flight at the failure may re-create it, or refill
      # it while it is being removed, for a moment even after close (seen
      # in about 1 run in 6 of the full-disk test): remove it until it
      # has stayed gone for half a second (3 s at most).
      deadline, gone_since = time.monotonic() + 3.0, None
      while time.monotonic() < deadline:
        if self._remove_partial(failed):
          gone_since = None
        elif gone_since is None:
          gone_since = time.monotonic()
        elif time.monotonic() - gone_since >= 0.5:
          break
        time.sleep(0.05)
      return
    self._manager.wait_until_finished()
    self._manager.close()


def saved_steps(checkpoints_dir: str) -> list[int]:
  """The complete checkpoint steps in a `checkpoints/` directory, sorted."""
  try:
    names = os.listdir(checkpoints_dir)
  except OSError:
    return []
  return sorted(int(n) for n in names if n.isdigit() and os.path.isdir(
      os.path.join(checkpoints_dir, n)))


def _abstract(tree: PyTree) -> PyTree:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def restore_params(path: str, abstract_params: PyTree) -> tuple[PyTree, int]:
  """Restores only the params of one of our checkpoints.

  Args:
    path: a model directory, its `checkpoints/` directory, or one
      `checkpoints/<step>` directory.
    abstract_params: target structure (ShapeDtypeStructs or arrays).

  Returns:
    `(params, step)`.

  Raises:
    FileNotFoundError: no checkpoint at `path`.
  """
  path = os.path.abspath(path)
  step = None
  base = os.path.basename(path.rstrip("/"))
  if base.isdigit() and os.path.isdir(os.path.join(path, "params")):
    step, path = int(base), os.path.dirname(path)
  elif os.path.isdir(os.path.join(path, CHECKPOINTS_DIR)):
    path = os.path.join(path, CHECKPOINTS_DIR)
  route_closed_loop_callbacks()
  manager = ocp.CheckpointManager(path, item_names=ITEM_NAMES)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no orbax checkpoint found under {path}")
  try:
    restored = _restore_step(
        path, step, list(manager.all_steps()),
        lambda: manager.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(_abstract(abstract_params))
            ),
        ),
        ", or ask for that step (eval.main and train.infer: "
        "--gin.CHECKPOINT_STEP={previous}; crs_chat.main: --step={previous})",
        {"params": abstract_params})
  finally:
    manager.close()
  return restored.params, step


def is_checkpoint_dir(path: str) -> bool:
  """True if `path` is a model, `checkpoints/` or `checkpoints/<step>` dir."""
  path = path.rstrip("/")
  if os.path.basename(path) == CHECKPOINTS_DIR:
    return os.path.isdir(path)
  return any(
      os.path.isdir(os.path.join(path, sub))
      for sub in (CHECKPOINTS_DIR, "params")
  )


# ---------------------------------------------------------------------------
# Model description files.
# ---------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
  if isinstance(value, (tuple, list)):
    return [_json_value(v) for v in value]
  if isinstance(value, (bool, int, float, str)) or value is None:
    return value
  try:  # dtypes: jnp.float32, np.dtype("bfloat16"), "float32".
    return jnp.dtype(value).name
  except TypeError as e:
    raise TypeError(f"cannot write T5Config value {value!r} to JSON") from e


def save_model_config(model_dir: str, config: Any) -> str:
  """Writes the T5Config fields to MODEL_DIR/model_config.json."""
  fields = {
      f.name: _json_value(getattr(config, f.name))
      for f in dataclasses.fields(config)
  }
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, MODEL_CONFIG_FILE)
  _write_atomic(path, json.dumps(fields, indent=2, sort_keys=True))
  return path


def load_model_config(model_dir: str) -> Any:
  """Reads MODEL_DIR/model_config.json back into a `network.T5Config`."""
  from train import network  # pylint: disable=g-import-not-at-top
  path = os.path.join(model_dir, MODEL_CONFIG_FILE)
  with open(path, encoding="utf-8") as f:
    fields = json.load(f)
  known = {f.name: f for f in dataclasses.fields(network.T5Config)}
  unknown = sorted(set(fields) - set(known))
  if unknown:
    raise ValueError(f"{path}: unknown T5Config fields {unknown}")
  kwargs = {}
  for name, value in fields.items():
    if isinstance(value, list):
      value = tuple(value)
    if "dtype" in name and isinstance(value, str):
      value = jnp.dtype(value)
    kwargs[name] = value
  return network.T5Config(**kwargs)


def save_vocabulary(
    model_dir: str, vocabulary: seqio.SentencePieceVocabulary
) -> None:
  """Copies the SentencePiece model into MODEL_DIR and records extra_ids."""
  os.makedirs(model_dir, exist_ok=True)
  target = os.path.join(model_dir, SPIECE_FILE)
  source = vocabulary.sentencepiece_model_file
  if os.path.abspath(source) != os.path.abspath(target):
    shutil.copyfile(source, target + ".tmp")
    os.replace(target + ".tmp", target)
  info = {"source": source, "extra_ids": vocabulary.extra_ids}
  _write_atomic(os.path.join(model_dir, VOCABULARY_FILE), json.dumps(info))


def load_vocabulary(model_dir: str) -> seqio.SentencePieceVocabulary:
  """Loads the vocabulary saved by `save_vocabulary`."""
  with open(os.path.join(model_dir, VOCABULARY_FILE), encoding="utf-8") as f:
    info = json.load(f)
  return seqio.SentencePieceVocabulary(
      os.path.join(model_dir, SPIECE_FILE), extra_ids=info["extra_ids"]
  )


def save_gin_config(model_dir: str, config_str: str) -> str:
  """Writes the operative gin config text to MODEL_DIR/config.gin."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, GIN_CONFIG_FILE)
  _write_atomic(path, config_str)
  return path


_MACRO_RE = r"^{}\s*=\s*(.+)$"


def trained_on(
    model_dir: str) -> tuple[Optional[str], Optional[dict[str, Any]]]:
  """MIXTURE_OR_TASK_NAME and TASK_FEATURE_LENGTHS from the run's config.gin.

  Args:
    model_dir: a run directory of `train.main`.

  Returns:
    `(name, lengths)`; None for what the file (or a one-line literal of it)
    does not hold.
  """
  path = os.path.join(model_dir, GIN_CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError:
    return None, None
  values = []
  for macro in ("MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS"):
    match = re.search(_MACRO_RE.format(macro), text, re.M)
    try:
      values.append(ast.literal_eval(match.group(1)) if match else None)
    except (ValueError, SyntaxError):
      values.append(None)
  name, lengths = values
  return (name if isinstance(name, str) else None,
          lengths if isinstance(lengths, dict) else None)


def save_model_files(model_dir: str, model: Any) -> None:
  """Writes model_config.json and the vocabulary for `load_model`."""
  save_model_config(model_dir, model.module.config)
  save_vocabulary(model_dir, model.output_vocabulary)


def _write_atomic(path: str, text: str) -> None:
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def abstract_params(model: Any) -> PyTree:
  """ShapeDtypeStructs of the model's params (no memory is allocated)."""
  shapes = {
      "encoder_input_tokens": (1, 1),
      "decoder_input_tokens": (1, 1),
  }
  variables = jax.eval_shape(
      lambda: model.get_initial_variables(jax.random.PRNGKey(0), shapes)
  )
  # This process's first device: with several processes, jax.devices()[0]
  # belongs to process 0.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      nn.meta.unbox(variables["params"]),
  )


def split_checkpoint_path(
    path: str, step: Optional[int] = None, *, check: bool = True
) -> tuple[str, Optional[int]]:
  """A CHECKPOINT_PATH -> `(run directory, step or None)`.

  `path` is a run directory (MODEL_DIR of `train.main`), its
  `checkpoints/` directory or one `checkpoints/<step>` directory, as t5x's
  CHECKPOINT_PATH names one checkpoint.

  Args:
    path: the path the user gave.
    step: an explicit step; it must agree with a `checkpoints/<step>` path.
    check: check that the run directory exists and holds a model config.

  Returns:
    `(model_dir, step)`; step None means the latest.

  Raises:
    errors.UserError: the path is not a run directory or a checkpoint.
  """
  norm = os.path.abspath(os.path.expanduser(path)).rstrip("/")
  base, parent = os.path.basename(norm), os.path.dirname(norm)
  if base.isdigit() and os.path.basename(parent) == CHECKPOINTS_DIR:
    if step is not None and int(step) != int(base):
      raise errors.UserError(
          f"CHECKPOINT_PATH names step {int(base)} but the step given is "
          f"{step}", where=path, fix="give one of them")
    norm, step = os.path.dirname(parent), int(base)
  elif base == CHECKPOINTS_DIR:
    norm = parent
  if not check:
    return norm, step
  if not os.path.isdir(norm):
    raise errors.UserError(
        "no such directory", where=path,
        fix="give a run directory written by train.main (its MODEL_DIR) or "
        "one of its checkpoints/<step> directories")
  if not os.path.exists(os.path.join(norm, MODEL_CONFIG_FILE)):
    raise errors.UserError(
        f"not a training run directory (no {MODEL_CONFIG_FILE})", where=path,
        fix="give the MODEL_DIR of a train.main run, or one of its "
        "checkpoints/<step> directories")
  ckpt_dir = os.path.join(norm, CHECKPOINTS_DIR)
  steps = sorted(int(n) for n in (
      os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else ()) if n.isdigit())
  if not steps:
    raise errors.UserError(
        f"the run has no checkpoint (nothing in {ckpt_dir})", where=path,
        fix="train it first (python -m train.main ... --gin.MODEL_DIR=...)")
  if step is not None and int(step) not in steps:
    raise errors.UserError(
        f"no checkpoint at step {step}; the run has steps "
        f"{', '.join(map(str, steps))}", where=path,
        fix=f"use one of them (the latest is {steps[-1]}), or name no step "
        "for the latest")
  return norm, step


def load_model(
    model_dir: str, step: Optional[int] = None
) -> tuple[Any, PyTree, int]:
  """Rebuilds the model from MODEL_DIR and restores its params.

  Args:
    model_dir: a CHECKPOINT_PATH: a directory written by
      `train.trainer.train`, or one of its `checkpoints/<step>` directories
      (`split_checkpoint_path`).
    step: checkpoint step; None means the latest (or the one `model_dir`
      names).

  Returns:
    `(model, params, step)`; params are host-replicated jax arrays.

  Raises:
    errors.UserError: `model_dir` is not a run directory or checkpoint.
  """
  model_dir, step = split_checkpoint_path(model_dir, step)
  # The trainer works with any model that follows the contract; only this
  # function needs our network, so it imports it here.
  # pylint: disable=g-import-not-at-top
  from train import models
  from train import network

  config = load_model_config(model_dir)
  vocabulary = load_vocabulary(model_dir)
  model = models.EncoderDecoderModel(
      network.Transformer(config), vocabulary, vocabulary
  )
  path = os.path.join(model_dir, CHECKPOINTS_DIR)
  if step is not None:
    path = os.path.join(path, str(step))
  params, step = restore_params(path, abstract_params(model))
  return model, params, step
