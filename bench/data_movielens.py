r"""MovieLens data benchmark: ReDial<->MovieLens match rate and throughput.

  python bench/data_movielens.py --shared_data=../shared/data

Prints
1. the ReDial (`movies_with_mentions.csv`) -> ml-latest-small title match
   rate, per match kind and weighted by ReDial mentions;
2. for each MovieLens task, the example counts and examples/second of
   (a) the offline TFDS build (`crs_movielens/*_small` from ml-latest-small;
   reviews from the synthetic fixture) and (b) the registered seqio
   preprocessing (formatting + tokenization), read through the same
   preprocessors as `crs_ml_*_v001` but from the `*_small` configs.
"""

import argparse
import collections
import csv
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import seqio  # pylint: disable=g-import-not-at-top
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

import crs_tasks  # pylint: disable=g-import-not-at-top,unused-import
from crs_tasks import movielens_data  # pylint: disable=g-import-not-at-top
from crs_tasks import movielens_matching  # pylint: disable=g-import-not-at-top
from crs_tasks.tfds_builders import movielens as builder_lib  # pylint: disable=g-import-not-at-top


def match_rate(shared_data: str) -> None:
  redial_csv = os.path.join(shared_data, "redial", "movies_with_mentions.csv")
  ml_dir = os.path.join(shared_data, "movielens", "ml-latest-small")
  movies = movielens_data.load_movies(os.path.join(ml_dir, "movies.csv"))
  titles = movielens_matching.load_redial_movies(redial_csv)
  matches, counts = movielens_matching.match_redial_to_movielens(titles, movies)
  mentions = {}
  with open(redial_csv, encoding="utf-8") as f:
    for row in csv.DictReader(f):
      mentions[row["movieId"]] = int(row["nbMentions"] or 0)
  total = sum(mentions.values())
  matched = sum(mentions[i] for i in matches)
  print("== ReDial movies_with_mentions.csv -> ml-latest-small/movies.csv")
  print(f"movies matched: {len(matches)}/{counts['total']} "
        f"({100 * len(matches) / counts['total']:.1f}%)")
  print(f"mention-weighted: {matched}/{total} ({100 * matched / total:.1f}%)")
  print("by kind: " + ", ".join(
      f"{k} {v}" for k, v in sorted(counts.items()) if k != "total"))
  distinct = len(set(matches.values()))
  print(f"distinct MovieLens movies matched: {distinct}")


def _timed_build(name: str, data_dir: str, manual_dir: str) -> None:
  builder = tfds.builder(name, data_dir=data_dir)
  start = time.perf_counter()
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  seconds = time.perf_counter() - start
  n = sum(s.num_examples for s in builder.info.splits.values())
  print(f"build {name}: {n} examples in {seconds:.1f} s "
        f"({n / seconds:.0f} ex/s)")


def _timed_task(registered: str, config: str, data_dir: str) -> None:
  base = seqio.get_mixture_or_task(registered)
  name = f"bench_{registered}_{config.replace('/', '_')}"
  if name not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        name,
        source=seqio.TfdsDataSource(
            tfds_name=f"crs_movielens/{config}:1.0.0",
            tfds_data_dir=data_dir,
            splits=("train", "validation"),
        ),
        preprocessors=base.preprocessors,
        output_features=base.output_features,
    )
  task = seqio.get_mixture_or_task(name)
  start = time.perf_counter()
  n = 0
  lengths = collections.Counter()
  for ex in task.get_dataset(
      {"inputs": 512, "targets": 128}, split="train", shuffle=False,
      use_cached=False,
  ).as_numpy_iterator():
    n += 1
    lengths["inputs"] += len(ex["inputs"])
    lengths["targets"] += len(ex["targets"])
  seconds = time.perf_counter() - start
  print(f"seqio {registered} on {config}: {n} train examples in "
        f"{seconds:.1f} s ({n / seconds:.0f} ex/s); mean tokens in/out "
        f"{lengths['inputs'] / n:.1f}/{lengths['targets'] / n:.1f}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shared_data", default="../shared/data")
  args = parser.parse_args()
  match_rate(args.shared_data)
  ml_dir = os.path.join(args.shared_data, "movielens", "ml-latest-small")
  reviews_dir = os.path.join(builder_lib.SAMPLE_DIR, "reviews")
  with tempfile.TemporaryDirectory() as data_dir:
    print("== offline TFDS build (2 CPU cores shared; wall clock)")
    _timed_build("crs_movielens/sequences_small", data_dir, ml_dir)
    _timed_build("crs_movielens/tags_small", data_dir, ml_dir)
    _timed_build("crs_movielens/reviews_full", data_dir, reviews_dir)
    print("== seqio preprocessing + tokenization, train split")
    _timed_task("crs_ml_sequences_v001", "sequences_small", data_dir)
    _timed_task("crs_ml_tags_v001", "tags_small", data_dir)
    _timed_task("crs_ml_tags_reversed_v001", "tags_small", data_dir)
    _timed_task("crs_ml_reviews_v001", "reviews_full", data_dir)


if __name__ == "__main__":
  main()
