r"""Builds the probe sets: `<probe>.jsonl` files from MovieLens (+ reviews).

  python -m crs_tasks.build_probes --movielens_dir=../shared/data/movielens \
      --reviews_csv=reviews.csv --build_dir=/tmp/probes

Without `--reviews_csv` there is no description probe. The bundled sample
probes (`crs_tasks/sample_data/probes`) are rebuilt with
`--sample --build_dir=crs_tasks/sample_data/probes`. The builder is
`crs_tasks/probe_builders.py`; the files are read by the probe Tasks
(`crs_tasks/probes.py`) and scored by `eval.probes.main` / `eval.main`.

It prints the pair counts, ends with the files written and, as the next
command, the popularity baseline on the new probes (`eval.probes.main`).
"""

import dataclasses
import json
import os
import shlex
from typing import Optional, Sequence

from absl import app
from absl import flags

from crs_runtime import cli
# `crs_tasks/__init__` has started the log capture (before TensorFlow).
from crs_tasks import probe_builders as builders
from crs_tasks import probe_io


def build(*, build_dir: str, movielens_dir: Optional[str],
          reviews_csv: Optional[str] = None, sample: bool = False,
          probes: Sequence[str] = probe_io.PROBE_NAMES, seed: int = 1,
          max_pairs: Optional[int] = None) -> tuple[dict[str, int], str]:
  """Writes the probe files to `build_dir`.

  Args:
    build_dir: where to write `<probe>.jsonl` (and `stats.json`).
    movielens_dir: the MovieLens folder (ignored with `sample`).
    reviews_csv: reviews CSV (None: no description probe).
    sample: build from the bundled samples with `builders.SAMPLE_CONFIG`.
    probes: which probes to build.
    seed: seed of the negative draws.
    max_pairs: pairs kept per probe (None: the config's).

  Returns:
    `(counts, movielens_dir)`: the builders' pair counts and the MovieLens
    folder read (the bundled one with `sample`).

  Raises:
    app.UsageError: no MovieLens folder to read.
  """
  config = builders.SAMPLE_CONFIG if sample else builders.ProbeConfig()
  config = dataclasses.replace(config, seed=seed)
  if max_pairs is not None:
    config = dataclasses.replace(config, max_pairs=max_pairs)
  if sample:
    movielens_dir = os.path.join(builders.SAMPLE_DATA_DIR, "movielens")
    reviews_csv = os.path.join(builders.SAMPLE_DATA_DIR, "reviews",
                               "reviews.csv")
  if not movielens_dir:
    raise app.UsageError("--build_dir needs --movielens_dir or --sample")
  data = builders.load_probe_data(
      movielens_dir, reviews_csv=reviews_csv, config=config)
  stats = builders.build_probe_files(data, build_dir, probes=probes,
                                     config=config)
  return stats["counts"], movielens_dir


def next_command(*, build_dir: str, movielens_dir: str) -> str:
  """The popularity baseline on the probes just built."""
  return (f"python -m eval.probes.main --probe_dir={shlex.quote(build_dir)} "
          f"--popularity_baseline "
          f"--movielens_dir={shlex.quote(movielens_dir)}")


def _define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so that
  importing this module next to other absl programs defines nothing)."""
  flags.DEFINE_string("build_dir", None, "Write <probe>.jsonl here.")
  flags.DEFINE_string("movielens_dir", None, "MovieLens dir.")
  flags.DEFINE_string("reviews_csv", None, "Reviews CSV.")
  flags.DEFINE_bool("sample", False, "Build from the bundled samples.")
  flags.DEFINE_list("probes", list(probe_io.PROBE_NAMES), "Probes.")
  flags.DEFINE_integer("seed", 1, "Seed of the negative draws.")
  flags.DEFINE_integer("max_pairs", None, "Pairs kept per probe.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  log = cli.log_to(args.build_dir)
  counts, movielens_dir = build(
      build_dir=args.build_dir, movielens_dir=args.movielens_dir,
      reviews_csv=args.reviews_csv, sample=args.sample, probes=args.probes,
      seed=args.seed, max_pairs=args.max_pairs)
  print(json.dumps(counts, indent=2))
  written = [f"{p}.jsonl" for p in probe_io.ALL_PROBE_NAMES
             if counts.get(f"{p}/pairs")]
  print(f"\nOutputs: {args.build_dir} (" + ", ".join(written) + ")"
        + (f"; log: {log}" if log else ""))
  print(cli.next_command(next_command(
      build_dir=args.build_dir, movielens_dir=movielens_dir)), flush=True)


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("build_dir")
  cli.run(main, name="build_probes")
