r"""Trains a T5 on a seqio mixture: the gin entry point.

  python -m train.main --gin_file=experiments/sample_tiny.gin \
    --gin.MODEL_DIR="'/tmp/t5cr_sample'"

  python -m train.main --gin_file=models/t5_1_1_base.gin \
    --gin_file=runs/finetune.gin \
    --gin.MIXTURE_OR_TASK_NAME="'crs_t5cr_v001'" \
    --gin.INITIAL_CHECKPOINT_PATH="'/path/to/hf/t5-v1_1-base'" \
    --gin.MODEL_DIR="'/tmp/t5cr_base'"

Re-running the same command after a crash resumes from the latest checkpoint
in MODEL_DIR. After training, prints a loss-curve summary and (if
`infer.show_predictions` is bound) decodes a few examples.
"""

from typing import Sequence

from absl import app
import gin
import tensorflow as tf

from train import gin_flags
from train import infer
from train import summaries
from train import trainer as trainer_lib

train_using_gin = gin.configurable(trainer_lib.train)
show_predictions_using_gin = gin.configurable(infer.show_predictions)


def run() -> trainer_lib.TrainResult:
  """Trains with the parsed gin config, then reports on the run."""
  result = train_using_gin(gin_config_str=gin.config_str())
  losses = [result.losses[s] for s in sorted(result.losses)]
  print(f"Trained {result.model_dir} to step {result.step}.")
  print(summaries.loss_curve_summary(losses), flush=True)
  show_predictions_using_gin(result.model, result.params)
  return result


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tf.config.set_visible_devices([], "GPU")  # JAX owns the accelerators.
  gin_flags.parse_from_flags()
  run()


if __name__ == "__main__":
  app.run(main, flags_parser=gin_flags.flags_parser)
