r"""Prepares the full TFDS datasets behind the `crs_*` (non-sample) tasks.

  python -m crs_tasks.prepare --data_dir=~/tensorflow_datasets \
      --redial_dir=/data/redial --movielens_dir=/data/movielens \
      [--reviews_csv=/data/reviews.csv]

* `--redial_dir` holds the extracted ReDial release (`train_data.jsonl`,
  `test_data.jsonl`, `movies_with_mentions.csv`): builds `crs_redial/full`.
* `--movielens_dir` holds `ml-25m/` (or is it): builds
  `crs_movielens/sequences_full` and `tags_full`. With
  `--movielens_source=ml-latest-small` it builds `sequences_small` and
  `tags_small` instead (the `crs_small_*` tasks and study mixtures). Without
  `--movielens_dir`, `--download_movielens` fetches the official zip.
* `--sample` also prepares the bundled-sample configs (`crs_redial/sample`,
  `crs_movielens/*_sample`), e.g. before caching `crs_sample_*` with Beam.
* `--reviews_csv` (format: `movielens_reviews.REVIEWS_CSV_FORMAT`) builds
  `crs_movielens/reviews_full`.

Point seqio at the same directory when training
(`seqio.set_tfds_data_dir_override` or `TFDS_DATA_DIR`).
"""

import os
import tempfile
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

from crs_tasks import cli
from crs_tasks import movielens_data
from crs_tasks.tfds_builders import movielens as movielens_builder  # pylint: disable=unused-import

_SUFFIX = {"ml-25m": "full", "ml-latest-small": "small"}


def _build(name: str, data_dir: str, manual_dir: Optional[str]) -> dict:
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  counts = {k: v.num_examples for k, v in builder.info.splits.items()}
  logging.info("%s: %s", name, counts)
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
) -> dict[str, dict[str, int]]:
  """Runs TFDS `download_and_prepare` for the requested full configs.

  Args:
    data_dir: TFDS data dir to write to.
    redial_dir: ReDial release dir, or None to skip ReDial.
    movielens_dir: dir holding the MovieLens release, or None.
    movielens_source: "ml-25m" (`*_full` configs) or "ml-latest-small"
      (`*_small` configs).
    download_movielens: without `movielens_dir`, download the official zip.
    reviews_csv: reviews CSV, or None to skip `reviews_full`.
    sample: also prepare `crs_redial/sample` and `crs_movielens/*_sample`.

  Returns:
    `{"<builder>/<config>": {split: num_examples}}` for what was built.

  Raises:
    ValueError: if `movielens_dir` lacks the files the source needs.
  """
  out = {}
  if sample:
    for name in ("crs_redial/sample",) + tuple(
        f"crs_movielens/{d}_sample" for d in ("sequences", "tags", "reviews")
    ):
      out[name] = _build(name, data_dir, None)
  if redial_dir:
    out["crs_redial/full"] = _build("crs_redial/full", data_dir, redial_dir)
  if movielens_dir or download_movielens:
    suffix = _SUFFIX[movielens_source]
    if movielens_dir:
      root = movielens_dir
      if os.path.isdir(os.path.join(root, movielens_source)):
        root = os.path.join(root, movielens_source)
      files = movielens_data.find_movielens_files(root)
      needed = ["movies", "ratings"] + (
          ["genome_scores", "genome_tags"] if suffix == "full" else ["tags"]
      )
      missing = [k for k in needed if k not in files]
      if missing:
        raise ValueError(
            f"{movielens_dir} lacks {missing} for {movielens_source}"
        )
    for dataset in ("sequences", "tags"):
      name = f"crs_movielens/{dataset}_{suffix}"
      out[name] = _build(name, data_dir, movielens_dir)
  if reviews_csv:
    if not os.path.exists(reviews_csv):
      raise FileNotFoundError(reviews_csv)
    with tempfile.TemporaryDirectory() as manual:
      os.symlink(os.path.abspath(reviews_csv),
                 os.path.join(manual, "reviews.csv"))
      name = "crs_movielens/reviews_full"
      out[name] = _build(name, data_dir, manual)
  return out


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
      "download_movielens", False,
      "Without --movielens_dir, download the official zip.",
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
  cli.log_to(os.path.expanduser(args.data_dir))
  counts = prepare(
      data_dir=os.path.expanduser(args.data_dir),
      redial_dir=args.redial_dir,
      movielens_dir=args.movielens_dir,
      movielens_source=args.movielens_source,
      download_movielens=args.download_movielens,
      reviews_csv=args.reviews_csv,
      sample=args.sample,
  )
  for name, splits in counts.items():
    print(f"{name}: {splits}")


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("data_dir")
  cli.run(main, name="prepare")
