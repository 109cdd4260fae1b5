r"""Evaluates a checkpoint: generation metrics, ranking protocols and probes.

In t5x's vocabulary (t5x/configs/runs/eval.gin): CHECKPOINT_PATH,
MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, EVAL_OUTPUT_DIR and a
`DatasetConfig` (split, batch size, ...):

  python -m eval.main --gin_file=gin/runs/eval.gin \
      --gin.CHECKPOINT_PATH="'/tmp/t5cr'" \
      --gin.MIXTURE_OR_TASK_NAME="'crs_sample_redial_v002'" \
      --gin.TASK_FEATURE_LENGTHS="{'inputs': 128, 'targets': 32}" \
      --gin.NUM_EXAMPLES=100 --gin.DECODE_METHOD="'beam'"

Writes EVAL_OUTPUT_DIR/<step>/{metrics.json,predictions.jsonl,config.gin}
and TensorBoard scalars under EVAL_OUTPUT_DIR (default: the run
directory's `eval/`). On several hosts (or processes) every one runs the
same command with `--multiprocess` or `--coordinator_address=HOST:PORT
--process_count=N --process_index=I` (as `train.main`); they split the work
and process 0 writes the outputs. The work is `eval.evaluation.evaluate`;
this file only resolves the gin config and loads the checkpoint. The old
macro names (TASKS, INPUTS_LENGTH, TARGETS_LENGTH, MODEL_DIR, SPLIT,
BATCH_SIZE) still work, with a deprecation warning (`DEPRECATED_MACROS`).
"""

import importlib
import os
import shlex
from typing import Optional, Sequence, Union

from absl import app
from absl import flags

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow and JAX load, so their start-up logs reach the
# command's log file (a no-op unless this module is the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

import gin
import jax

import crs_tasks  # pylint: disable=unused-import  # Registers the tasks.
from crs_runtime import errors
from crs_runtime import gin_flags
from eval import evaluation
from eval import ranking
from eval.probes import probe_lib
from train import checkpointing
from train import distributed
from train import inference
from train import input_pipeline

# Old eval.gin macro -> its t5x name (`NEW['key']`: one entry of a dict; a
# dotted name: a binding, as t5x's `utils.DatasetConfig.batch_size`).
DEPRECATED_MACROS = {
    "MODEL_DIR": "CHECKPOINT_PATH",
    "TASKS": "MIXTURE_OR_TASK_NAME",
    "INPUTS_LENGTH": "TASK_FEATURE_LENGTHS['inputs']",
    "TARGETS_LENGTH": "TASK_FEATURE_LENGTHS['targets']",
    "SPLIT": "MIXTURE_OR_TASK_SPLIT",
    "BATCH_SIZE": "input_pipeline.DatasetConfig.batch_size",
}

DEFAULT_GIN_FILE = "runs/eval.gin"

# The <EVAL_OUTPUT_DIR>/<step> folder of the last `evaluate_checkpoint`.
_last_output_dir: Optional[str] = None

gin.external_configurable(inference.DecodeConfig, module="inference")
gin.external_configurable(input_pipeline.DatasetConfig,
                          module="input_pipeline")


def _task_names(name: Union[str, Sequence[str]]) -> list[str]:
  """MIXTURE_OR_TASK_NAME (a name, or a list of names) -> checked names."""
  names = [name] if isinstance(name, str) else list(name)
  for n in names:
    errors.get_mixture_or_task(n, where="MIXTURE_OR_TASK_NAME")
  return names


@gin.configurable
def evaluate_checkpoint(
    checkpoint_path: str = gin.REQUIRED,
    dataset_cfg: Optional[input_pipeline.DatasetConfig] = None,
    output_dir: Optional[str] = None,
    step: Optional[int] = None,
    num_examples: Optional[int] = None,
    decode: inference.DecodeConfig = inference.DecodeConfig(),
    movie_list: Optional[str] = None,
    ranking_ks: Sequence[int] = ranking.DEFAULT_KS,
    ranking_examples: Optional[int] = None,
    probe_dir: Optional[str] = None,
    max_probe_pairs: Optional[int] = None,
) -> dict[str, float]:
  """Loads a checkpoint and runs `evaluation.evaluate` on it.

  Args:
    checkpoint_path: a run directory (MODEL_DIR of `train.main`) or one of
      its `checkpoints/<step>` directories.
    dataset_cfg: what to evaluate on: `mixture_or_task_name` (a Task, a
      Mixture, or a list of them; mixtures are expanded into their tasks),
      `task_feature_lengths`, `split`, `batch_size`. Default: ReDial's test
      split at 512/64.
    output_dir: EVAL_OUTPUT_DIR; results go to `<output_dir>/<step>/`.
      None: `<run directory>/eval`.
    step: checkpoint step (None: the latest, or the one checkpoint_path
      names).
    num_examples: the first N examples of each task (None: all).
    decode: decoding settings.
    movie_list: ReDial's movies_with_mentions.csv: the ranking protocols'
      candidates (None: no ranking).
    ranking_ks: the k of Recall@k.
    ranking_examples: rank over the first N examples only.
    probe_dir: a folder of `<probe>.jsonl` (`crs_tasks.build_probes`,
      or the bundled `crs_tasks/sample_data/probes`), read through the
      probes' seqio Tasks (`probe_lib.load_probes`) and scored at the
      lengths each probe needs.
    max_probe_pairs: pairs kept per probe.

  Returns:
    The metrics.
  """
  if not isinstance(checkpoint_path, str):  # CHECKPOINT_PATH left REQUIRED.
    raise errors.UserError(
        "gin macro CHECKPOINT_PATH is required and was not set",
        fix="add --gin.CHECKPOINT_PATH=\"'/path/to/run'\"")
  if dataset_cfg is None:
    dataset_cfg = input_pipeline.DatasetConfig(
        "crs_redial_v002", dict(evaluation.DEFAULT_LENGTHS), "test", 16,
        module="crs_tasks")
  if dataset_cfg.use_cached or dataset_cfg.pack:
    raise errors.UserError(
        "evaluation reads the tasks' examples directly: use_cached and pack "
        "are not supported", where="input_pipeline.DatasetConfig",
        fix="set use_cached = False and pack = False")
  if dataset_cfg.module:
    importlib.import_module(dataset_cfg.module)
  tasks = _task_names(dataset_cfg.mixture_or_task_name)
  model_dir, _ = checkpointing.split_checkpoint_path(
      checkpoint_path, step, check=False)
  output_dir = output_dir or os.path.join(model_dir, "eval")
  model, params, step = checkpointing.load_model(checkpoint_path, step=step)
  cli.log_to(output_dir, process_index=jax.process_index(),
             process_count=jax.process_count())
  probes = None
  if probe_dir:
    probes = probe_lib.load_probes(probe_dir, max_pairs=max_probe_pairs)
  ranking_fns = None
  if movie_list:  # ReDial's movies_with_mentions.csv: the ranked candidates.
    ranking_fns = ranking.make_protocols(
        ranking.load_movie_list(movie_list), ks=ranking_ks)
  step_dir = os.path.join(output_dir, str(step))
  metrics = evaluation.evaluate(
      model=model, params=params, vocabulary=model.output_vocabulary,
      tasks=tasks, output_dir=step_dir, summary_dir=output_dir,
      step=step, split=dataset_cfg.split, num_examples=num_examples,
      decode=decode, task_feature_lengths=dataset_cfg.task_feature_lengths,
      batch_size=dataset_cfg.batch_size,
      ranking_fns=ranking_fns, ranking_examples=ranking_examples,
      probes=probes)
  if distributed.is_primary():
    with open(os.path.join(step_dir, "config.gin"), "w") as f:
      f.write(gin.operative_config_str())
  global _last_output_dir
  _last_output_dir = step_dir
  return metrics


def run(gin_files: Sequence[str], gin_bindings: Sequence[str],
        search_paths: Sequence[str] = ()) -> dict[str, float]:
  """Parses the gin config (searched in gin/ and the repo root), runs."""
  gin_flags.parse_gin(list(gin_files) or [DEFAULT_GIN_FILE], gin_bindings,
                      search_paths, deprecated_macros=DEPRECATED_MACROS)
  metrics = evaluate_checkpoint()
  if distributed.is_primary():  # Process 0 reports for everyone.
    for name in sorted(metrics):
      print(f"{name}: {metrics[name]:.4f}")
  return metrics


def _report(metrics_dir: Optional[str]) -> None:
  """Where the outputs are and what to run next."""
  if not metrics_dir:
    return
  log = cli.log_path()
  print(f"\nOutputs in {metrics_dir}: metrics.json, predictions.jsonl, "
        "config.gin" + (f"; log: {log}" if log else ""))
  output_dir = os.path.dirname(os.path.normpath(metrics_dir))
  if os.path.basename(output_dir) != "eval":  # eval.report reads <run>/eval.
    print(cli.next_command(
        f"cat {shlex.quote(os.path.join(metrics_dir, 'metrics.json'))}"),
          flush=True)
    return
  run_dir = os.path.dirname(output_dir)
  print(cli.next_command(
      f"python -m eval.report --model_dirs={shlex.quote(run_dir)} "
      f"--output_dir={shlex.quote(os.path.join(run_dir, 'report'))}"),
        flush=True)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.initialize_from_flags()  # Before anything touches a device.
  run(flags.FLAGS.gin_file, flags.FLAGS.gin_bindings,
      flags.FLAGS.gin_search_paths)
  if distributed.is_primary():
    _report(_last_output_dir)


if __name__ == "__main__":
  cli.run(main, name="eval", flags_parser=gin_flags.flags_parser)
