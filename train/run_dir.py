"""Guards of a run directory (MODEL_DIR): the right model, one writer.

Nothing is written to a run directory before the run is known to fit it:

* `check_compatible(model_dir, config)` compares the `network.T5Config` of
  the command with the `model_config.json` already in MODEL_DIR (every
  field that fixes a parameter's shape: sizes, layers, vocabulary size,
  activations; not dropout or dtypes) and raises `ModelMismatchError`
  ("this directory holds a model with emb_dim 128; the command asks for
  64") without touching a file. It only reads.
* `RunLock(model_dir)` is the one-writer lock, as orbax and t5x keep one
  for a run: `MODEL_DIR/train.lock` names the host, pid, start time and
  command of its holder; it is created atomically (`O_CREAT | O_EXCL`)
  before the first write and removed on exit. A second `train.main` on the
  same MODEL_DIR stops with `RunLockedError` naming the first. A lock left
  by a process that is no longer running on this host (kill -9, power
  loss) is stale: it is taken over with a one-line note. A lock of another
  host cannot be checked: the error says how to remove it. With several
  processes only process 0 takes it (the lock is per run, not per
  process). Locks are re-entrant within a process (`train.main` takes it,
  then `trainer.train` again).
"""

import dataclasses
import datetime
import errno
import json
import os
import shlex
import socket
import sys
from typing import Any, Optional

from crs_runtime import errors

LOCK_FILE = "train.lock"
MODEL_CONFIG_FILE = "model_config.json"  # As checkpointing.MODEL_CONFIG_FILE.

# T5Config fields that a run may change without changing any shape.
RUN_ONLY_FIELDS = ("dropout_rate", "dtype", "float32_attention_logits")


class ModelMismatchError(errors.UserError):
  """MODEL_DIR holds a model of another size than the one asked for."""


class RunLockedError(errors.UserError):
  """Another process is writing the same run directory."""


def _json_value(value: Any) -> Any:
  if isinstance(value, (tuple, list)):
    return [_json_value(v) for v in value]
  return value


def saved_model_fields(model_dir: str) -> Optional[dict[str, Any]]:
  """The fields of MODEL_DIR/model_config.json, or None when there is none.

  Raises:
    errors.UserError: the file exists but is not a JSON object.
  """
  path = os.path.join(model_dir, MODEL_CONFIG_FILE)
  if not os.path.isfile(path):
    return None  # A new run (or no directory: check_writable says so).
  try:
    with open(path, encoding="utf-8") as f:
      fields = json.load(f)
  except (OSError, ValueError) as e:
    raise errors.UserError(
        f"cannot read the run's model config ({type(e).__name__}: {e})",
        where=path,
        fix="restore the file from a backup, or give a new --gin.MODEL_DIR"
    ) from None
  if not isinstance(fields, dict):
    raise errors.UserError(
        "the run's model config is not a JSON object", where=path,
        fix="restore the file from a backup, or give a new --gin.MODEL_DIR")
  return fields


def shape_differences(saved: dict[str, Any],
                      config: Any) -> list[tuple[str, Any, Any]]:
  """`(field, saved value, asked value)` for each shape field that differs.

  Args:
    saved: the fields of a model_config.json.
    config: a `network.T5Config` (any dataclass with the same fields).
  """
  out = []
  for field in dataclasses.fields(config):
    if field.name in RUN_ONLY_FIELDS or field.name not in saved:
      continue
    asked = _json_value(getattr(config, field.name))
    if asked != saved[field.name]:
      out.append((field.name, saved[field.name], asked))
  return out


def _shown(value: Any) -> str:
  if isinstance(value, list):
    return repr(tuple(value))
  return str(value)


def check_compatible(model_dir: str, config: Any) -> None:
  """Raises ModelMismatchError when MODEL_DIR holds a model of another size.

  Reads MODEL_DIR/model_config.json (a new or empty directory fits any
  model) and writes nothing.

  Args:
    model_dir: the run directory.
    config: the command's `network.T5Config`.
  """
  if config is None or not dataclasses.is_dataclass(config):
    return
  saved = saved_model_fields(model_dir)
  if saved is None:
    return
  diffs = shape_differences(saved, config)
  if not diffs:
    return
  held = ", ".join(f"{n} {_shown(s)}" for n, s, _ in diffs)
  if len(diffs) == 1:
    asked = _shown(diffs[0][2])
  else:
    asked = ", ".join(f"{n} {_shown(a)}" for n, _, a in diffs)
  raise ModelMismatchError(
      f"this directory holds a model with {held}; the command asks for "
      f"{asked} (nothing was written)", where=model_dir,
      fix="give a new --gin.MODEL_DIR to train the new size, or drop the "
      "size override to resume this run")


# ---------------------------------------------------------------------------
# The lock.
# ---------------------------------------------------------------------------

_HELD: dict[str, int] = {}  # Lock path -> how many times this process holds it.


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by someone else.
    return True
  except OSError:
    return True
  return True


def read_lock(model_dir: str) -> Optional[dict[str, Any]]:
  """The holder recorded in MODEL_DIR's lock file, or None when unlocked."""
  path = os.path.join(model_dir, LOCK_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      holder = json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # Being written, or garbled: held by someone unknown.
  return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
  return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
          f"started {holder.get('started', '?')}")


class RunLock:
  """The one-writer lock of a run directory (see the module docstring).

  Usage:
    with RunLock(model_dir):
      ...  # write the run
  """

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self.path = os.path.abspath(os.path.join(model_dir, LOCK_FILE))
    self.taken_over: Optional[dict[str, Any]] = None

  def _record(self) -> str:
    return json.dumps({
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
    }) + "\n"

  def _create(self) -> bool:
    """Creates the lock file; False when it already exists."""
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(self._record())
    return True

  def acquire(self) -> "RunLock":
    """Takes the lock (creating MODEL_DIR), or raises RunLockedError."""
    if _HELD.get(self.path):
      _HELD[self.path] += 1
      return self
    os.makedirs(self.model_dir, exist_ok=True)
    for _ in range(3):
      if self._create():
        _HELD[self.path] = 1
        return self
      holder = read_lock(self.model_dir)
      if holder is None:
        continue  # Released meanwhile: try again.
      if not self._stale(holder):
        who = _describe(holder)
        raise RunLockedError(
            f"another train.main is writing this run directory ({who})",
            where=self.model_dir,
            fix=f"wait for it to end or stop it (kill {holder.get('pid')}), "
            "or give another --gin.MODEL_DIR; if no such process runs, "
            f"delete {self.path}")
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
      self.taken_over = holder
      if holder.get("pid") != os.getpid():
        print(f"note: {self.path}: took over the stale lock of "
              f"{_describe(holder)} (that process is no longer running)",
              file=sys.stderr, flush=True)
    raise RunLockedError(
        "could not take the run directory's lock (it keeps changing)",
        where=self.path, fix="make sure one train.main writes this "
        "directory, then run again")

  @staticmethod
  def _stale(holder: dict[str, Any]) -> bool:
    """True when the holder is a process of this host that has ended."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
      return False
    return pid == os.getpid() or not _pid_alive(pid)

  def release(self) -> None:
    """Gives the lock back (the file is removed on the last release)."""
    count = _HELD.get(self.path, 0)
    if count > 1:
      _HELD[self.path] = count - 1
      return
    _HELD.pop(self.path, None)
    holder = read_lock(self.model_dir)
    if holder and holder.get("pid") == os.getpid() and (
        holder.get("host") == socket.gethostname()):
      try:
        os.remove(self.path)
      except OSError as e:
        if e.errno != errno.ENOENT:
          raise

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()
