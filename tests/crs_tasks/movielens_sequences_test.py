"""Tests for crs_tasks/movielens_sequences.py on literal ratings."""

import collections
import csv
import os
import random

import pytest

from crs_runtime import errors
from crs_tasks import movielens_data
from crs_tasks import movielens_sequences


def test_bad_rating_lines_are_skipped_not_liked(write_csv, tmp_path,
                                                capsys):
  # float("nan") parses, NaN >= 4.0 is False and inf would count as liked.
  path = write_csv(
      tmp_path / "ratings.csv",
      ["userId", "movieId", "rating", "timestamp"],
      [[1, 1, "4.0", 10], [1, 2, "NaN", 11], [1, 3, "inf", 12],
       [1, 4, "four", 13], [1, 5, "5.0", 14]],
  )
  stats = collections.Counter()
  assert movielens_sequences.liked_sequences(
      path, min_liked=1, stats=stats) == {1: [1, 5]}
  assert stats["ratings_malformed"] == 3 and stats["ratings"] == 2
  assert capsys.readouterr().err == (
      f"warning: skipped 3 malformed lines of {path}: line 3: field "
      "'rating': 'NaN' is not a finite number; line 4: field 'rating': "
      "'inf' is not a finite number; line 5: field 'rating': cannot parse "
      "'four' (could not convert string to float: 'four')\n")


def test_liked_sequences_latest_by_timestamp(two_user_ratings):
  stats = collections.Counter()
  seqs = movielens_sequences.liked_sequences(
      two_user_ratings,
      min_liked=3,
      max_len=3,
      known_movies={1, 2, 3, 4, 5},
      stats=stats,
  )
  # User 1 liked (by time): 2@100, 4@200, 1@300, 3@400 -> latest 3.
  assert seqs == {1: [4, 1, 3]}
  assert stats["ratings_unknown_movie"] == 1
  assert stats["ratings"] == 8


def test_build_sequence_examples_exact(ml_movies, two_user_ratings):
  splits = movielens_sequences.build_sequence_examples(
      ml_movies,
      two_user_ratings,
      min_liked=3,
      max_len=3,
      shuffle=False,
      t=None,
      test_fraction=0.0,
  )
  # Sequence [4, 1, 3] = Heat, The Matrix, Willy Wonka.
  wonka = "Willy Wonka & the Chocolate Factory (1971)"
  assert splits == {
      "train": [
          {"user_id": 1, "movies": ["Heat (1995)"],
           "target": "The Matrix (1999)"},
          {"user_id": 1, "movies": ["Heat (1995)", "The Matrix (1999)"],
           "target": wonka},
      ],
      "validation": [],
  }


def test_sequence_shuffle_is_seeded_permutation(write_csv, tmp_path):
  movies = {i: movielens_data.Movie(i, f"M{i}", f"M{i}", None)
            for i in range(1, 13)}
  path = write_csv(
      tmp_path / "ratings.csv",
      ["userId", "movieId", "rating", "timestamp"],
      [[7, i, "5.0", 1000 + i] for i in range(1, 13)],
  )
  build = lambda seed: movielens_sequences.build_sequence_examples(
      movies, path, seed=seed, t=None, test_fraction=0.0)["train"]
  a, b, c = build(1), build(1), build(2)
  assert a == b
  assert len(a) == 9  # latest 10 liked -> prefixes of length 1..9
  order = a[-1]["movies"] + [a[-1]["target"]]
  assert sorted(order) == sorted(f"M{i}" for i in range(3, 13))
  assert order != [f"M{i}" for i in range(3, 13)] or c != a
  assert c[-1]["movies"] + [c[-1]["target"]] != order


def test_keep_probability_formula():
  assert movielens_sequences.keep_probability(0.04, 0.01) == pytest.approx(
      0.5)
  assert movielens_sequences.keep_probability(0.16, 0.01) == pytest.approx(
      0.25)
  assert movielens_sequences.keep_probability(0.005, 0.01) == 1.0
  with pytest.raises(ValueError):
    movielens_sequences.keep_probability(0.0, 0.01)


def test_downsample_popular_matches_explicit_draws():
  examples = [{"target": t} for t in "aaaab"]
  # freq(a) = 4/5, freq(b) = 1/5; t = 0.2 -> p(a) = sqrt(0.25) = 0.5, p(b) = 1.
  draws = random.Random(3)
  expected = [
      ex for ex in examples
      if draws.random() < {"a": 0.5, "b": 1.0}[ex["target"]]
  ]
  got = movielens_sequences.downsample_popular(examples, key="target", t=0.2,
                                               seed=3)
  assert got == expected
  assert {"target": "b"} in got
  assert movielens_sequences.downsample_popular(
      examples, key="target", t=None, seed=3) == examples


def test_downsample_popular_rate():
  examples = [{"target": "x"}] * 10000
  # freq = 1, t = 0.25 -> keep probability 0.5; 4 sigma = 200.
  kept = movielens_sequences.downsample_popular(examples, key="target",
                                                t=0.25, seed=0)
  assert abs(len(kept) - 5000) < 200


@pytest.fixture(name="real_small")
def _real_small(shared_data):
  """(movies, ratings path, users with >= 10 likes) of ml-latest-small."""
  root = shared_data / "movielens" / "ml-latest-small"
  movies = movielens_data.load_movies(str(root / "movies.csv"))
  # Independent count: users with >= 10 ratings >= 4.0.
  liked = collections.Counter()
  with open(root / "ratings.csv", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      if float(row["rating"]) >= 4.0:
        liked[row["userId"]] += 1
  n_users = sum(1 for n in liked.values() if n >= 10)
  return movies, str(root / "ratings.csv"), n_users


def test_real_sequences_nine_per_user_split_by_user(real_small):
  movies, ratings, n_users = real_small
  splits = movielens_sequences.build_sequence_examples(
      movies, ratings, t=None, seed=42)
  assert len(splits["train"]) + len(splits["validation"]) == 9 * n_users
  val_users = {ex["user_id"] for ex in splits["validation"]}
  assert len(val_users) == round(0.2 * n_users)
  assert not val_users & {ex["user_id"] for ex in splits["train"]}


def test_real_downsampling_keeps_fewer_never_more(real_small):
  movies, ratings, n_users = real_small
  down = movielens_sequences.build_sequence_examples(
      movies, ratings, t=1e-3, seed=42)
  assert 0 < len(down["train"]) + len(down["validation"]) < 9 * n_users


def test_bundled_sample_statistics():
  sample = os.path.join(os.path.dirname(movielens_data.__file__),
                        "sample_data", "movielens")
  movies = movielens_data.load_movies(os.path.join(sample, "movies.csv"))
  stats = collections.Counter()
  splits = movielens_sequences.build_sequence_examples(
      movies, os.path.join(sample, "ratings.csv"), t=1e-2, seed=42,
      stats=stats,
  )
  # Subset rule (SUBSET.md): 40 users with >= 10 liked matched movies, so
  # 40 x 9 prefixes before down-sampling, 8 users in validation.
  assert stats["users_kept"] == 40
  assert stats["sequence_examples_before_downsampling"] == 360
  assert len({ex["user_id"] for ex in splits["validation"]}) == 8
  assert 200 < len(splits["train"]) + len(splits["validation"]) <= 360
