r"""Evaluates a checkpoint: generation metrics, ranking protocols and probes.

  python -m eval.main --gin_file=gin/runs/eval.gin \
      --gin.MODEL_DIR="'/tmp/t5cr'" --gin.NUM_EXAMPLES=100 \
      --gin.DECODE_METHOD="'beam'"

Writes MODEL_DIR/eval/<step>/{metrics.json,predictions.jsonl} and TensorBoard
scalars under MODEL_DIR/eval. The work is `eval.evaluation.evaluate`; this file
only resolves the gin config and loads the checkpoint.
"""

import os
from typing import Mapping, Optional, Sequence

from absl import app
from absl import flags
import gin

import crs_tasks  # pylint: disable=unused-import  # Registers the tasks.
from eval import evaluation
from eval import ranking
from eval.probes import probe_lib
from train import checkpointing
from train import gin_flags


@gin.configurable
def evaluate_checkpoint(
    model_dir: str = gin.REQUIRED,
    step: Optional[int] = None,
    tasks: Sequence[str] = ("crs_redial_v001",),
    split: str = "test",
    num_examples: Optional[int] = None,
    decode: evaluation.DecodeConfig = evaluation.DecodeConfig(),
    inputs_length: int = 512,
    targets_length: int = 64,
    batch_size: int = 16,
    movie_list: Optional[str] = None,
    ranking_ks: Sequence[int] = ranking.DEFAULT_KS,
    ranking_examples: Optional[int] = None,
    probe_fns: Optional[Mapping[str, evaluation.ProbeFn]] = None,
    probe_dir: Optional[str] = None,
    max_probe_pairs: Optional[int] = None,
) -> dict[str, float]:
  """Loads `model_dir`'s checkpoint and runs `evaluation.evaluate` on it.

  Probes come from `probe_fns`, or from `probe_dir` (the `<probe>.jsonl`
  files of `eval.probes.main --build_dir`, e.g. the bundled
  `crs_tasks/sample_data/probes`), each cut to `max_probe_pairs`.
  """
  if not isinstance(model_dir, str):  # `MODEL_DIR = %gin.REQUIRED` unbound.
    raise ValueError("MODEL_DIR is required: --gin.MODEL_DIR=\"'/path'\"")
  model, params, step = checkpointing.load_model(model_dir, step=step)
  if probe_dir:
    probe_fns = dict(probe_fns or {}, **probe_lib.make_probe_fns(
        probe_dir, max_pairs=max_probe_pairs))
  ranking_fns = None
  if movie_list:  # ReDial's movies_with_mentions.csv: the ranked candidates.
    ranking_fns = ranking.make_protocols(
        ranking.load_movie_list(movie_list), ks=ranking_ks,
        batch_size=batch_size)
  eval_dir = os.path.join(model_dir, "eval")
  output_dir = os.path.join(eval_dir, str(step))
  metrics = evaluation.evaluate(
      model=model, params=params, vocabulary=model.output_vocabulary,
      tasks=list(tasks), output_dir=output_dir, summary_dir=eval_dir,
      step=step, split=split, num_examples=num_examples, decode=decode,
      inputs_length=inputs_length, targets_length=targets_length,
      batch_size=batch_size, ranking_fns=ranking_fns,
      ranking_examples=ranking_examples, probe_fns=probe_fns)
  with open(os.path.join(output_dir, "config.gin"), "w") as f:
    f.write(gin.operative_config_str())
  return metrics


gin.external_configurable(evaluation.DecodeConfig, module="evaluation")


def run(gin_files: Sequence[str], gin_bindings: Sequence[str],
        search_paths: Sequence[str] = ()) -> None:
  """Parses the gin config (searched in gin/ and the repo root), runs."""
  gin_flags.parse_gin(gin_files, gin_bindings, search_paths)
  metrics = evaluate_checkpoint()
  for name in sorted(metrics):
    print(f"{name}: {metrics[name]:.4f}")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  run(flags.FLAGS.gin_file, flags.FLAGS.gin_bindings,
      flags.FLAGS.gin_search_paths)


if __name__ == "__main__":
  app.run(main, flags_parser=gin_flags.flags_parser)
