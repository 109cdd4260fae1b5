"""Tests for crs_tasks.prepare on the bundled files (no download)."""

import os
import pathlib
import shlex
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from crs_runtime import errors
from crs_tasks import movielens_data
from crs_tasks import movielens_reviews
from crs_tasks import movielens_sequences
from crs_tasks import movielens_tags
from crs_tasks import prepare
from crs_tasks.tfds_builders import movielens as builder_lib

_ML = os.path.join(builder_lib.SAMPLE_DIR, "movielens")
_REVIEWS = os.path.join(builder_lib.SAMPLE_DIR, "reviews", "reviews.csv")


def test_prepare_small_and_reviews(tmp_path):
  counts = prepare.prepare(
      data_dir=str(tmp_path),
      movielens_dir=_ML,
      movielens_source="ml-latest-small",
      reviews_csv=_REVIEWS,
  )
  movies = movielens_data.load_movies(os.path.join(_ML, "movies.csv"))
  seqs = movielens_sequences.build_sequence_examples(
      movies, os.path.join(_ML, "ratings.csv"), t=1e-3, seed=42
  )
  tags = movielens_tags.build_tag_examples(
      movies, movielens_tags.load_user_tags(os.path.join(_ML, "tags.csv")),
      seed=42,
  )
  reviews = movielens_reviews.build_review_examples(_REVIEWS, seed=42)
  assert counts == {
      "crs_movielens/sequences_small": {
          k: len(v) for k, v in seqs.items()},
      "crs_movielens/tags_small": {k: len(v) for k, v in tags.items()},
      "crs_movielens/reviews_full": {k: len(v) for k, v in reviews.items()},
  }
  # 26 review sentences (hand count in movielens_reviews_test), 1 of 4 movies
  # in validation.
  assert sum(counts["crs_movielens/reviews_full"].values()) == 26
  assert os.path.isdir(tmp_path / "crs_movielens" / "reviews_full" / "1.0.0")


def test_prepare_full_needs_genome(tmp_path):
  with pytest.raises(errors.UserError, match="genome-scores.csv"):
    prepare.prepare(data_dir=str(tmp_path), movielens_dir=_ML)


def _write(path, lines):
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_prepare_full_uses_tag_genome(tmp_path, monkeypatch):
  # With 45 examples every target is "popular" at t=1e-3; keep them all.
  monkeypatch.setattr(
      builder_lib.CrsMovielens.builder_configs["sequences_full"],
      "downsample_t", None,
  )
  ml = tmp_path / "manual" / "ml-25m"
  ml.mkdir(parents=True)
  _write(ml / "movies.csv", ["movieId,title,genres"] + [
      f"{i},Movie {i} (2000),Drama" for i in range(1, 12)
  ] + ['12,"Matrix, The (1999)",Action|Sci-Fi'])
  _write(ml / "ratings.csv", ["userId,movieId,rating,timestamp"] + [
      f"{u},{i},5.0,{100 * u + i}" for u in range(1, 6) for i in range(1, 12)
  ])
  _write(ml / "genome-tags.csv", ["tagId,tag", "1,dystopia", "2,cyberpunk",
                                   "3,romance"])
  _write(ml / "genome-scores.csv", [
      "movieId,tagId,relevance", "12,1,0.9", "12,2,0.95", "12,3,0.1",
      "1,3,0.85", "2,3,0.9", "3,1,0.99",
  ])
  _write(ml / "tags.csv", ["userId,movieId,tag,timestamp", "1,5,ignored,1"])
  data_dir = str(tmp_path / "tfds")
  counts = prepare.prepare(
      data_dir=data_dir, movielens_dir=str(tmp_path / "manual")
  )
  assert sum(counts["crs_movielens/tags_full"].values()) > 0
  builder = tfds.builder("crs_movielens/tags_full", data_dir=data_dir)
  first = {}
  for split in ("train", "validation"):
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      if ex["subset_index"] == 0:
        first[ex["title"].decode()] = [t.decode() for t in ex["all_tags"]]
  # Genome tags with relevance > 0.8 (most relevant first), then genres; the
  # user tag of movie 5 is not used when the genome exists.
  assert first == {
      "The Matrix (1999)": ["cyberpunk", "dystopia", "Action", "Sci-Fi"],
      "Movie 1 (2000)": ["romance", "Drama"],
      "Movie 2 (2000)": ["romance", "Drama"],
      "Movie 3 (2000)": ["dystopia", "Drama"],
  }
  # 5 users x 9 prefixes (no down-sampling); 1 of 5 users in validation.
  assert counts["crs_movielens/sequences_full"] == {
      "train": 36, "validation": 9}


ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_task_reading_picks_the_newest_plain_task():
  assert prepare.task_reading("crs_redial/full") == "crs_redial_v002"
  assert prepare.task_reading("crs_redial/sample") == "crs_sample_redial_v002"
  assert (prepare.task_reading("crs_movielens/sequences_small")
          == "crs_small_ml_sequences_v001")
  assert (prepare.task_reading("crs_movielens/tags_full")
          == "crs_ml_tags_v001")  # Not crs_ml_tags_reversed_v001.
  assert prepare.task_reading("no_such/config") is None


def _command(line):
  """A printed `next: VAR=value python ...` line -> (env, argv)."""
  words = shlex.split(line[len("next: "):])
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  while "=" in words[0] and not words[0].startswith("-"):
    name, value = words.pop(0).split("=", 1)
    env[name] = value
  assert words[0] == "python"
  return env, [sys.executable] + words[1:]


def test_prepare_then_the_commands_it_suggests(tmp_path, runnable):
  """prepare ends with inspect_task on what it built; that command runs as
  printed and ends with the train.main command for the task."""
  data_dir = tmp_path / "tfds"
  proc = subprocess.run(
      [sys.executable, "-m", "crs_tasks.prepare", f"--data_dir={data_dir}",
       f"--reviews_csv={_REVIEWS}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.rstrip().splitlines()
  assert lines[-3] == (f"Outputs in {data_dir}: crs_movielens/reviews_full "
                       f"(TFDS datasets); log: {data_dir}/logs/prepare.log")
  assert lines[-2] == (
      "next: python -m crs_tasks.inspect_task --task=crs_ml_reviews_v001 "
      f"--n=2 --tfds_dir={data_dir}")
  runnable(lines[-2])
  train = ("python -m train.main --gin_file=gin/experiments/sample_tiny.gin "
           "--gin.MIXTURE_OR_TASK_NAME=\"'crs_ml_reviews_v001'\" "
           "--gin.MODEL_DIR=\"'/tmp/crs_ml_reviews_v001'\"")
  assert lines[-1] == f"next: TFDS_DATA_DIR={data_dir} {train}"
  runnable(lines[-1])

  env, argv = _command(lines[-2])
  proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                        timeout=600, check=False, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.rstrip().splitlines()
  assert lines[0] == "== crs_ml_reviews_v001 (train) =="
  assert sum(line.startswith("-- example") for line in lines) == 2
  assert lines[-2] == "Outputs: none written (the report is above)"
  assert lines[-1] == f"next: TFDS_DATA_DIR={data_dir} {train}"


def test_a_killed_prepare_leaves_no_incomplete_folder(tmp_path, capsys):
  config = tmp_path / "crs_redial" / "full"
  (config / "incomplete.AB12CD_1.0.0" / "x").mkdir(parents=True)
  (config / "1.0.0").mkdir()  # A complete version stays.
  removed = prepare.remove_incomplete(str(tmp_path), "crs_redial/full")
  assert removed == [str(config / "incomplete.AB12CD_1.0.0")]
  assert sorted(os.listdir(config)) == ["1.0.0"]
  assert "left by an interrupted prepare" in capsys.readouterr().out
  assert prepare.remove_incomplete(str(tmp_path), "crs_redial/full") == []
