r"""Prints examples and token-length statistics of a seqio Task or Mixture.

  python -m crs_tasks.inspect_task --task=crs_sample_ml_sequences_v001 \
      --n=5 --split=train

For each of the first `--n` examples it prints the decoded `inputs` and
`targets`; then, over up to `--max_examples` examples (one epoch of a task,
or that many draws of a mixture, repeated), the length in tokens
(EOS included) of each feature: mean, 50/90/99th percentiles, max, and the
share of examples longer than `--inputs_length` / `--targets_length` (512 and
128, the T5-CR lengths), i.e. the truncation rate at those lengths. It
writes nothing; it ends with the command that trains a tiny model on the
task (`--list`: the command that inspects one).
"""

from collections.abc import Mapping, Sequence
import os
import shlex
from typing import Optional

from absl import app
from absl import flags
import numpy as np
import seqio

import crs_tasks  # pylint: disable=unused-import  (registers the tasks)
from crs_runtime import cli
from crs_runtime import errors

def length_stats(lengths: Sequence[int], limit: int) -> dict[str, float]:
  """Summary of token lengths.

  Args:
    lengths: token counts, one per example (may be empty).
    limit: the sequence length examples are truncated to.

  Returns:
    `count`, `mean`, `p50`, `p90`, `p99`, `max` and `truncated` (share of
    lengths > limit). E.g. `length_stats([1, 2, 3, 10], 3)` has mean 4.0,
    max 10 and truncated 0.25. Percentiles are numpy's linear ones.
  """
  if not len(lengths):  # pylint: disable=g-explicit-length-test
    return {"count": 0}
  arr = np.asarray(lengths, dtype=np.float64)
  return {
      "count": int(arr.size),
      "mean": float(arr.mean()),
      "p50": float(np.percentile(arr, 50)),
      "p90": float(np.percentile(arr, 90)),
      "p99": float(np.percentile(arr, 99)),
      "max": float(arr.max()),
      "truncated": float((arr > limit).mean()),
  }


def inspect(
    name: str,
    *,
    split: str = "train",
    n: int = 5,
    max_examples: int = 2000,
    seed: int = 0,
    limits: Mapping[str, int] = None,
) -> str:
  """Returns the printed report for a task or mixture.

  Args:
    name: registered seqio Task or Mixture.
    split: split to read.
    n: examples to show.
    max_examples: examples to compute statistics over.
    seed: seed of the dataset (mixture sampling).
    limits: feature -> truncation length (default inputs 512, targets 128).

  Returns:
    The report text.
  """
  limits = limits or {"inputs": 512, "targets": 128}
  provider = errors.get_mixture_or_task(name, where="--task")
  ds = provider.get_dataset(
      sequence_length=None,
      split=split,
      shuffle=False,
      use_cached=False,
      seed=seed,
      # A mixture stops at its first exhausted task after one epoch; repeat
      # it so the statistics follow the mixing rates.
      num_epochs=None if isinstance(provider, seqio.Mixture) else 1,
  )
  vocabs = {k: f.vocabulary for k, f in provider.output_features.items()}
  lines = [f"== {name} ({split}) =="]
  lengths = {k: [] for k in limits}
  for i, ex in enumerate(ds.take(max_examples).as_numpy_iterator()):
    for k in limits:
      lengths[k].append(len(ex[k]))
    if i < n:
      lines.append(f"-- example {i}")
      for k in limits:
        text = vocabs[k].decode(ex[k].tolist())
        lines.append(f"{k} ({len(ex[k])} tokens): {text}")
  lines.append(f"-- token lengths (EOS included) over {len(lengths['inputs'])}"
               " examples")
  for k, limit in limits.items():
    s = length_stats(lengths[k], limit)
    if s["count"]:
      lines.append(
          f"{k}: mean {s['mean']:.1f}, p50 {s['p50']:.0f}, p90 "
          f"{s['p90']:.0f}, p99 {s['p99']:.0f}, max {s['max']:.0f}, "
          f"truncated at {limit}: {100 * s['truncated']:.2f}%"
      )
  return "\n".join(lines)


def _define_flags() -> None:
  """Defines the flags (only when run as a program: importing this module
  beside other absl programs defines nothing)."""
  flags.DEFINE_string("task", None, "Task or mixture name.")
  flags.DEFINE_bool("list", False, "List the registered tasks and mixtures.")
  flags.DEFINE_integer("n", 5, "Examples to print.")
  flags.DEFINE_string("split", "train", "Split.")
  flags.DEFINE_integer(
      "max_examples", 2000, "Examples to compute the length statistics on."
  )
  flags.DEFINE_integer("seed", 0, "Seed (mixture sampling).")
  flags.DEFINE_integer("inputs_length", 512, "Inputs length.")
  flags.DEFINE_integer(
      "targets_length", 128, "Targets length."
  )
  flags.DEFINE_string(
      "tfds_dir", None, "TFDS data dir (default: TFDS's own)."
  )


def list_names() -> str:
  """The registered mixtures and tasks, one per line (crs_* and probe_*)."""
  mixtures = sorted(seqio.MixtureRegistry.names())
  tasks = sorted(seqio.TaskRegistry.names())
  return "\n".join([f"mixture {n}" for n in mixtures] +
                   [f"task {n}" for n in tasks])


def train_command(name: str, tfds_dir: Optional[str] = None) -> str:
  """`python -m train.main` on the tiny sample config, trained on `name`
  (with `TFDS_DATA_DIR=tfds_dir` when given: where its data were prepared)."""
  env = f"TFDS_DATA_DIR={shlex.quote(tfds_dir)} " if tfds_dir else ""
  return (f"{env}python -m train.main "
          "--gin_file=gin/experiments/sample_tiny.gin "
          f"--gin.MIXTURE_OR_TASK_NAME={cli.gin_string(name)} "
          f"--gin.MODEL_DIR={cli.gin_string(f'/tmp/{name}')}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  if args.list:
    print(list_names())
    print("\nOutputs: none written (the names are above)")
    print(cli.next_command("python -m crs_tasks.inspect_task "
                           "--task=crs_sample_t5cr_v002 --n=2"))
    return
  if not args.task:
    raise app.UsageError("--task is required (--list shows the names)")
  if args.tfds_dir:
    seqio.set_tfds_data_dir_override(args.tfds_dir)
  print(
      inspect(
          args.task,
          split=args.split,
          n=args.n,
          max_examples=args.max_examples,
          seed=args.seed,
          limits={
              "inputs": args.inputs_length,
              "targets": args.targets_length,
          },
      )
  )
  print("\nOutputs: none written (the report is above)")
  print(cli.next_command(train_command(
      args.task, args.tfds_dir or os.environ.get("TFDS_DATA_DIR"))))


if __name__ == "__main__":
  _define_flags()
  cli.run(main, name="inspect_task")
