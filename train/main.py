r"""Trains a T5 on a seqio mixture: the gin entry point.

  python -m train.main --gin_file=experiments/sample_tiny.gin \
    --gin.MODEL_DIR="'/tmp/t5cr_sample'"

  python -m train.main --gin_file=models/t5_1_1_base.gin \
    --gin_file=runs/finetune.gin \
    --gin.MIXTURE_OR_TASK_NAME="'crs_t5cr_v002'" \
    --gin.INITIAL_CHECKPOINT_PATH="'/path/to/hf/t5-v1_1-base'" \
    --gin.MODEL_DIR="'/tmp/t5cr_base'"

Re-running the same command after a crash resumes from the latest checkpoint
in MODEL_DIR. On several hosts every host runs the same command with
`--multiprocess` (TPU pod slices, Slurm) or `--coordinator_address=HOST:PORT
--process_count=N --process_index=I` (README, "Several hosts"). After training, prints a loss-curve summary and (if
`infer.show_predictions` is bound) decodes a few examples.
"""

import importlib
import os
import shlex
import sys
from typing import Any, Mapping, Optional, Sequence

from absl import app

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow and JAX load, so their start-up logs reach the
# command's log file (a no-op unless this module is the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

import gin
import jax
import tensorflow as tf

from crs_runtime import errors
from crs_runtime import gin_flags
from train import checkpointing
from train import distributed
from train import infer
from train import input_pipeline
from train import run_dir
from train import summaries
from train import trainer as trainer_lib

train_using_gin = gin.configurable(trainer_lib.train)
show_predictions_using_gin = gin.configurable(infer.show_predictions)


def _macro(name: str) -> Any:
  """The value of gin macro `name`, or None when the config has none."""
  try:
    return gin.query_parameter(f"%{name}")
  except ValueError:
    return None


def _positive_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mesh_shape(value: Any) -> bool:
  return value is None or (isinstance(value, (tuple, list)) and len(
      value) == 2 and all(_positive_int(v) for v in value))


def _path(value: Any) -> bool:
  return isinstance(value, str) and bool(value.strip())


# Numeric and path macros of runs/train.gin (and the model files): name ->
# (what it expects, test, an example value). Checked before MODEL_DIR is
# touched; a macro bound to a gin reference (e.g. a schedule) is not.
MACRO_CHECKS = {
    "TRAIN_STEPS": ("a positive integer", _positive_int, "1000"),
    "BATCH_SIZE": ("a positive integer", _positive_int, "16"),
    "EVAL_PERIOD": ("an integer >= 0 (0: no training eval)",
                    _non_negative_int, "1000"),
    "EVAL_STEPS": ("a positive integer or None (all batches)",
                   lambda v: v is None or _positive_int(v), "20"),
    "CHECKPOINT_PERIOD": ("a positive integer", _positive_int, "1000"),
    "KEEP": ("a positive integer or None (keep all)",
             lambda v: v is None or _positive_int(v), "3"),
    "LOG_PERIOD": ("a positive integer", _positive_int, "10"),
    "NUM_MICROBATCHES": ("a positive integer", _positive_int, "1"),
    "NUM_PARTITIONS": ("a positive integer", _positive_int, "1"),
    "NUM_INPUT_SHARDS": ("a positive integer or None",
                         lambda v: v is None or _positive_int(v), "2"),
    "MESH_SHAPE": ("None or (data, model), two positive integers",
                   _mesh_shape, "\"(4, 2)\""),
    "LEARNING_RATE": ("a positive number",
                      lambda v: _number(v) and v > 0, "0.003"),
    "DROPOUT_RATE": ("a number in [0, 1)",
                     lambda v: _number(v) and 0 <= v < 1, "0.1"),
    "Z_LOSS": ("a number >= 0", lambda v: _number(v) and v >= 0, "1e-4"),
    "LABEL_SMOOTHING": ("a number in [0, 1)",
                        lambda v: _number(v) and 0 <= v < 1, "0.0"),
    "RANDOM_SEED": ("an integer >= 0", _non_negative_int, "0"),
    "DATA_SEED": ("an integer >= 0", _non_negative_int, "0"),
    "MODEL_DIR": ("a directory path (a non-empty string)", _path,
                  "\"'/tmp/t5cr_run'\""),
    "INITIAL_CHECKPOINT_PATH": (
        "None or the path of a checkpoint", lambda v: v is None or _path(v),
        "\"'/ckpt/t5-v1_1-base'\""),
}

_LITERALS = (int, float, str, bool, tuple, list, dict, type(None))


def _shown(value: Any) -> str:
  kind = {bool: "a boolean", str: "a string", float: "a number",
          int: "an integer"}.get(type(value), type(value).__name__)
  return f"{value!r} ({kind})"


def check_macros() -> None:
  """Checks the type and range of every macro in `MACRO_CHECKS`.

  Raises:
    errors.UserError: one line naming the macro, what it got and what it
      expects, e.g. "gin macro TRAIN_STEPS must be a positive integer, got
      'twenty' (a string)".
  """
  for name, (expects, test, example) in MACRO_CHECKS.items():
    try:
      value = gin.query_parameter(f"%{name}")
    except ValueError:
      continue  # Not in this config.
    if not isinstance(value, _LITERALS):
      continue  # A gin reference: checked where it is used.
    if not test(value):
      raise errors.UserError(
          f"gin macro {name} must be {expects}, got {_shown(value)}",
          fix=f"e.g. --gin.{name}={example}")
  model_dir = _macro("MODEL_DIR")
  if isinstance(model_dir, str) and os.path.exists(model_dir) and (
      not os.path.isdir(model_dir)):
    raise errors.UserError(
        "MODEL_DIR is a file, not a directory", where=model_dir,
        fix="give a directory (new or of an earlier run) as --gin.MODEL_DIR")
  initial = _macro("INITIAL_CHECKPOINT_PATH")
  if isinstance(initial, str) and "://" not in initial and (
      not os.path.exists(initial)):
    raise errors.UserError(
        "INITIAL_CHECKPOINT_PATH does not exist", where=initial,
        fix="give a Hugging Face T5 checkpoint directory or one of our run "
        "directories, or None to start from scratch")


def check_config() -> None:
  """Fails fast, before any work, on what the macros say.

  Checks the type and range of the numeric and path macros
  (`check_macros`), TASK_FEATURE_LENGTHS (each length > 0) and
  MIXTURE_OR_TASK_NAME (registered; close matches otherwise). Bindings that
  bypass the macros are checked again by `input_pipeline` and the trainer.

  Raises:
    errors.UserError: the first problem found.
  """
  check_macros()
  lengths = _macro("TASK_FEATURE_LENGTHS")
  if isinstance(lengths, Mapping) or isinstance(lengths, (int, float, str)):
    input_pipeline.check_feature_lengths(lengths)
  name = _macro("MIXTURE_OR_TASK_NAME")
  if isinstance(name, str):
    module = _macro("MIXTURE_OR_TASK_MODULE")
    if isinstance(module, str) and module:
      importlib.import_module(module)
    errors.get_mixture_or_task(name, where="MIXTURE_OR_TASK_NAME")


def next_commands(model_dir: str, mixture_or_task_name: Optional[str],
                  lengths: Optional[Mapping[str, int]]) -> list[str]:
  """The commands to run after training: evaluation and chat."""
  return [cli.eval_command(model_dir, mixture_or_task_name, lengths),
          f"python -m crs_chat.main --checkpoint_path={shlex.quote(model_dir)}"]


def _model_config() -> Any:
  """The `network.T5Config` that gin's MODEL builds, or None."""
  try:
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    return model.module.config
  except Exception:  # pylint: disable=broad-except  # Built again in train.
    return None


def _shell_word(text: str) -> str:
  """`text` quoted for a shell, as the README writes gin strings."""
  if shlex.quote(text) == text:
    return text
  if not any(c in text for c in '"$`\\!'):
    return f'"{text}"'
  return shlex.quote(text)


def _shell_arg(arg: str) -> str:
  """`--gin.MODEL_DIR='/x'` -> `--gin.MODEL_DIR="'/x'"` (a shell word)."""
  name, eq, value = arg.partition("=")
  if arg.startswith("--") and eq and shlex.quote(name) == name:
    return f"{name}={_shell_word(value)}"
  return _shell_word(arg)


def resume_command() -> str:
  """The command that resumes this run: the one that started it."""
  argv = sys.argv
  if argv and argv[0].endswith(os.path.join("train", "main.py")):
    return " ".join(["python -m train.main", *map(_shell_arg, argv[1:])])
  return "the same command"


def _open_run_dir(model_dir: Any) -> Optional[run_dir.RunLock]:
  """Checks MODEL_DIR (read-only) and locks it, before anything is written.

  Only process 0 checks and locks: the lock is the run's, not a process's.
  """
  if not isinstance(model_dir, str) or not distributed.is_primary():
    return None
  run_dir.check_compatible(model_dir, _model_config())
  _check_optimizer(model_dir)
  checkpointing.check_writable(model_dir)
  return run_dir.RunLock(model_dir).acquire()


def _check_optimizer(model_dir: str) -> None:
  """A resume with another optimizer state stops here, before the log moves.

  The trainer checks again (`checkpointing.check_same_optimizer`) for
  library callers; this one keeps MODEL_DIR untouched, `logs/` included.
  """
  if not checkpointing.saved_steps(
      os.path.join(model_dir, checkpointing.CHECKPOINTS_DIR)):
    return
  try:
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    binding = gin.query_parameter("trainer.train.optimizer")
    abstract = jax.eval_shape(binding.scoped_configurable_fn().init,
                              checkpointing.abstract_params(model))
  except Exception:  # pylint: disable=broad-except  # Checked in train.
    return
  checkpointing.check_same_optimizer(model_dir, abstract, str(binding))


def _interrupted(error: KeyboardInterrupt, model_dir: Any) -> str:
  """What a Ctrl-C left: the trainer's words, or the last checkpoint."""
  if isinstance(error, trainer_lib.TrainingInterrupted):
    return str(error)
  directory = os.path.join(str(model_dir), checkpointing.CHECKPOINTS_DIR)
  steps = checkpointing.saved_steps(directory)
  if not steps:
    return ("training interrupted before its first step; no checkpoint was "
            "written yet")
  return (f"training interrupted before its first step; the last checkpoint "
          f"is step {steps[-1]} ({os.path.join(directory, str(steps[-1]))})")


def run() -> trainer_lib.TrainResult:
  """Trains with the parsed gin config, then reports on the run."""
  check_config()
  model_dir = _macro("MODEL_DIR")
  lock = _open_run_dir(model_dir)
  try:
    log = cli.log_to(model_dir if isinstance(model_dir, str) else None,
                     process_index=jax.process_index(),
                     process_count=jax.process_count())
    try:
      result = train_using_gin(gin_config_str=gin.config_str())
    except KeyboardInterrupt as e:  # Ctrl-C: one line (crs_runtime.cli).
      if not distributed.is_primary():
        raise KeyboardInterrupt() from None
      raise KeyboardInterrupt(
          f"{_interrupted(e, model_dir)}; resume with: "
          f"{resume_command()}") from None
  finally:
    if lock is not None:
      lock.release()
  if not distributed.is_primary():  # Process 0 reports for everyone.
    return result
  steps = sorted(result.losses)
  losses = [result.losses[s] for s in steps]
  print(f"Trained {result.model_dir} to step {result.step}.")
  print(summaries.loss_curve_summary(
      losses, first_step=steps[0] if steps else 1), flush=True)
  if jax.process_count() == 1:  # Decoding reads one process's examples.
    show_predictions_using_gin(result.model, result.params)
  print(f"\nOutputs in {result.model_dir}: checkpoints/ (latest step "
        f"{result.step}), config.gin, TensorBoard summaries (tensorboard "
        f"--logdir={result.model_dir})" + (f"; log: {log}" if log else ""))
  print(cli.next_command(*next_commands(
      result.model_dir, _macro("MIXTURE_OR_TASK_NAME"),
      _macro("TASK_FEATURE_LENGTHS"))), flush=True)
  return result


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tf.config.set_visible_devices([], "GPU")  # JAX owns the accelerators.
  distributed.initialize_from_flags()  # Before anything touches a device.
  gin_flags.parse_from_flags()
  run()


if __name__ == "__main__":
  cli.run(main, name="train", flags_parser=gin_flags.flags_parser)
