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
import shlex
from typing import Any, Mapping, Optional, Sequence

from absl import app
import gin
import jax
import tensorflow as tf

from crs_tasks import cli
from crs_tasks import errors
from train import distributed
from train import gin_flags
from train import infer
from train import input_pipeline
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


def check_config() -> None:
  """Fails fast, before any work, on what the macros say.

  Checks TASK_FEATURE_LENGTHS (each length > 0) and MIXTURE_OR_TASK_NAME
  (registered; close matches otherwise). Bindings that bypass the macros
  are checked again by `input_pipeline` and the trainer.

  Raises:
    errors.UserError: the first problem found.
  """
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
          f"python -m eval.chat --checkpoint_path={shlex.quote(model_dir)}"]


def run() -> trainer_lib.TrainResult:
  """Trains with the parsed gin config, then reports on the run."""
  check_config()
  model_dir = _macro("MODEL_DIR")
  log = cli.log_to(model_dir if isinstance(model_dir, str) else None,
                   process_index=jax.process_index(),
                   process_count=jax.process_count())
  result = train_using_gin(gin_config_str=gin.config_str())
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
