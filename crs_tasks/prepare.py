r"""Prepares the full TFDS datasets behind the `crs_*` (non-sample) tasks.

  python -m crs_tasks.prepare --data_dir=~/tensorflow_datasets \
      --redial_dir=/data/redial --movielens_dir=/data/movielens \
      [--reviews_csv=/data/reviews.csv]

* `--redial_dir` holds the extracted ReDial release (`train_data.jsonl`,
  `test_data.jsonl`, `movies_with_mentions.csv`): builds `crs_redial/full`.
* `--movielens_dir` holds `ml-25m/` (or is it): builds
  `crs_movielens/sequences_full` and `tags_full`. With
  `--movielens_source=ml-latest-small` it builds `sequences_small` and
  `tags_small` instead (the `crs_small_*` tasks and study mixtures).
* `--download`: nothing is downloaded unless this is given. Then the
  official zips of what has no folder given (ReDial without `--redial_dir`,
  MovieLens without `--movielens_dir`) are downloaded, with their size and
  expected time printed first and a progress bar (checksums pinned in
  `tfds_builders/*checksums.tsv`). A folder that does not exist or lacks a
  file is named at once, with what to do.
* `--sample` also prepares the bundled-sample configs (`crs_redial/sample`,
  `crs_movielens/*_sample`), e.g. before caching `crs_sample_*` with Beam.
* `--reviews_csv` (format: `movielens_reviews.REVIEWS_CSV_FORMAT`) builds
  `crs_movielens/reviews_full`.

Point seqio at the same directory when training
(`seqio.set_tfds_data_dir_override` or `TFDS_DATA_DIR`). The command ends
with a summary: examples per split, ReDial lines skipped as malformed and
`@id` mentions found in neither `movieMentions` nor the movie CSV (dropped
from the text; each warned with `file:line`), and the next command to run.
What a killed prepare left (TFDS `incomplete.*` folders) is removed when
the same config is prepared again (`remove_incomplete`).
"""

import os
import shlex
import tempfile
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import seqio
import tensorflow_datasets as tfds

from crs_runtime import cli
from crs_runtime import errors
from crs_tasks import inspect_task
from crs_tasks.tfds_builders import movielens as movielens_builder
from crs_tasks.tfds_builders import redial as redial_builder
from crs_tasks.tfds_builders import sources

_SUFFIX = {"ml-25m": "full", "ml-latest-small": "small"}


def remove_incomplete(data_dir: str, name: str) -> list[str]:
  """Deletes what a killed prepare of `name` left (`sources.remove_incomplete`).

  Args:
    data_dir: the TFDS data dir.
    name: `<builder>/<config>`, e.g. `crs_redial/full`.

  Returns:
    The folders removed.
  """
  return sources.remove_incomplete(
      os.path.join(os.path.expanduser(data_dir), *name.split("/")))


def _build(name: str, data_dir: str, manual_dir: Optional[str],
           report: Optional[list[str]] = None) -> dict:
  """Prepares one config; appends its parse summary to `report`."""
  remove_incomplete(data_dir, name)
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  counts = {k: v.num_examples for k, v in builder.info.splits.items()}
  logging.info("%s: %s", name, counts)
  summary = getattr(builder, "parse_summary", None)
  if report is not None and summary is not None:
    report.append(
        f"{name}: {summary.malformed_lines} malformed line(s) skipped, "
        f"{summary.mentions_unresolved} @id mention(s) in neither "
        "movieMentions nor the movie CSV (dropped from the text)")
    shown = summary.malformed_locations + summary.unresolved_locations
    report.extend(f"  {location}" for location in shown[:20])
    if len(shown) > 20:
      report.append(f"  ... and {len(shown) - 20} more (see the log)")
  return counts


def prepare(
    *,
    data_dir: str,
    redial_dir: Optional[str] = None,
    movielens_dir: Optional[str] = None,
    movielens_source: str = "ml-25m",
    download_movielens: bool = False,
    reviews_csv: Optional[str] = None,
    sample: bool = False,
    download: bool = False,
    report: Optional[list[str]] = None,
) -> dict[str, dict[str, int]]:
  """Runs TFDS `download_and_prepare` for the requested full configs.

  Args:
    data_dir: TFDS data dir to write to.
    redial_dir: ReDial release dir, or None to skip ReDial.
    movielens_dir: dir holding the MovieLens release, or None.
    movielens_source: "ml-25m" (`*_full` configs) or "ml-latest-small"
      (`*_small` configs).
    download_movielens: without `movielens_dir`, download the official
      MovieLens zip (`download` does it for ReDial too).
    reviews_csv: reviews CSV, or None to skip `reviews_full`.
    sample: also prepare `crs_redial/sample` and `crs_movielens/*_sample`.
    download: download the official zips of ReDial (without `redial_dir`)
      and MovieLens (without `movielens_dir`); nothing is downloaded
      otherwise.
    report: gets the parse-summary lines (malformed lines, unresolved
      `@id` mentions) when given.

  Returns:
    `{"<builder>/<config>": {split: num_examples}}` for what was built.

  Raises:
    errors.UserError: a folder or file does not exist or lacks a file (checked
      for every input before anything is built).
  """
  suffix = _SUFFIX[movielens_source]
  # Check every input first: a typo fails at once, not after ReDial is built.
  if redial_dir:
    redial_builder.check_redial_dir(os.path.expanduser(redial_dir))
  if movielens_dir:
    movielens_builder.check_movielens_dir(
        os.path.expanduser(movielens_dir), movielens_source,
        movielens_builder.release_files(movielens_source))
  if reviews_csv and not os.path.isfile(reviews_csv):
    raise errors.UserError(
        "the reviews CSV does not exist", where=reviews_csv,
        fix="check the path given as --reviews_csv")
  fetch = []
  if download and not redial_dir:
    fetch.append(redial_builder.DOWNLOAD)
  if (download or download_movielens) and not movielens_dir:
    fetch.append(movielens_builder.DOWNLOADS[movielens_source])
  for item in fetch:
    print(f"Will download {item.url}: {sources.describe(item)}.", flush=True)

  out = {}
  with sources.allow_downloads(bool(fetch)):
    if sample:
      for name in ("crs_redial/sample",) + tuple(
          f"crs_movielens/{d}_sample"
          for d in ("sequences", "tags", "reviews")
      ):
        out[name] = _build(name, data_dir, None, report)
    if redial_dir or download:
      out["crs_redial/full"] = _build(
          "crs_redial/full", data_dir, redial_dir, report)
    if movielens_dir or download or download_movielens:
      for dataset in ("sequences", "tags"):
        name = f"crs_movielens/{dataset}_{suffix}"
        out[name] = _build(name, data_dir, movielens_dir)
  if reviews_csv:
    with tempfile.TemporaryDirectory() as manual:
      os.symlink(os.path.abspath(reviews_csv),
                 os.path.join(manual, "reviews.csv"))
      name = "crs_movielens/reviews_full"
      out[name] = _build(name, data_dir, manual)
  return out


def task_reading(config: str) -> Optional[str]:
  """The newest plain seqio Task that reads a TFDS config, e.g.
  `crs_redial/full` -> `crs_redial_v002` (not a `_cased_` or `_reversed`
  variant when there is a plain one). None when no Task reads it."""
  names = sorted(
      name for name in seqio.TaskRegistry.names()
      if isinstance(source := seqio.TaskRegistry.get(name).source,
                    seqio.TfdsDataSource)
      and source.tfds_dataset.name.split(":")[0] == config)
  plain = [n for n in names if "_cased_" not in n and "_reversed_" not in n]
  return (plain or names or [None])[-1]


def next_commands(data_dir: str, configs: Sequence[str]) -> list[str]:
  """The commands to run after preparing `configs` in `data_dir`: look at
  the first prepared Task, then train a tiny model on it."""
  tasks = [t for t in map(task_reading, configs) if t]
  if not tasks:
    return []
  task = tasks[0]
  return [f"python -m crs_tasks.inspect_task --task={task} --n=2 "
          f"--tfds_dir={shlex.quote(data_dir)}",
          inspect_task.train_command(task, data_dir)]


def _define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so that
  importing this module next to other absl programs defines nothing)."""
  flags.DEFINE_string("data_dir", None, "TFDS data dir to write.")
  flags.DEFINE_string("redial_dir", None, "ReDial release dir.")
  flags.DEFINE_string(
      "movielens_dir", None, "Dir holding ml-25m/ (or ml-latest-small/)."
  )
  flags.DEFINE_enum(
      "movielens_source", "ml-25m", ["ml-25m", "ml-latest-small"],
      "Which MovieLens release --movielens_dir holds.",
  )
  flags.DEFINE_bool(
      "download", False,
      "Download the official zips of ReDial (without --redial_dir) and "
      "MovieLens (without --movielens_dir). Nothing is downloaded otherwise.",
  )
  flags.DEFINE_bool(
      "download_movielens", False,
      "Without --movielens_dir, download the official MovieLens zip only.",
  )
  flags.DEFINE_string("reviews_csv", None, "Reviews CSV file.")
  flags.DEFINE_bool(
      "sample", False,
      "Also prepare the bundled-sample configs (needed before Beam caching of "
      "the crs_sample_* tasks; seqio prepares them lazily otherwise).",
  )


def main(argv):
  del argv
  args = flags.FLAGS
  data_dir = os.path.expanduser(args.data_dir)
  log = cli.log_to(data_dir)
  report = []
  counts = prepare(
      data_dir=data_dir,
      redial_dir=args.redial_dir,
      movielens_dir=args.movielens_dir,
      movielens_source=args.movielens_source,
      download_movielens=args.download_movielens,
      reviews_csv=args.reviews_csv,
      sample=args.sample,
      download=args.download,
      report=report,
  )
  if not counts:
    raise errors.UserError(
        "nothing to prepare", fix="give --redial_dir, --movielens_dir, "
        "--reviews_csv, --sample or --download")
  print(f"Prepared in {data_dir}:")
  for name, splits in counts.items():
    print(f"  {name}: {splits}")
  for line in report:
    print(line)
  print(f"\nOutputs in {data_dir}: {', '.join(counts)} (TFDS datasets)"
        + (f"; log: {log}" if log else ""))
  print(cli.next_command(*next_commands(data_dir, list(counts))), flush=True)


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("data_dir")
  cli.run(main, name="prepare")
