"""Tests for crs_tasks/movielens_reviews.py on literal reviews."""

import collections
import os

import pytest

from crs_runtime import errors
from crs_tasks import movielens_reviews

SAMPLE_REVIEWS = os.path.join(
    os.path.dirname(movielens_reviews.__file__), "sample_data", "reviews",
    "reviews.csv")


def test_split_sentences():
  assert movielens_reviews.split_sentences(
      'Great film. I loved it!  Would I watch again? "Yes." Sure'
  ) == ["Great film.", "I loved it!", "Would I watch again?", '"Yes."',
        "Sure"]


def test_review_examples_context_and_cap():
  reviews = [("Up (2009)", "Sad. Then happy. The end.")] + [
      ("Heat (1995)", f"Review {i}.") for i in range(7)
  ]
  out = movielens_reviews.review_examples(reviews, max_reviews_per_movie=5,
                                          max_context_sentences=1)
  assert out[:3] == [
      {"title": "Up (2009)", "context": "", "target": "Sad.",
       "review_index": 0, "sentence_index": 0},
      {"title": "Up (2009)", "context": "Sad.", "target": "Then happy.",
       "review_index": 0, "sentence_index": 1},
      {"title": "Up (2009)", "context": "Then happy.", "target": "The end.",
       "review_index": 0, "sentence_index": 2},
  ]
  assert [ex["target"] for ex in out[3:]] == [f"Review {i}." for i in range(5)]


def test_load_reviews_needs_title_and_review_columns(write_csv, tmp_path):
  path = write_csv(tmp_path / "reviews.csv", ["movie", "review"],
                   [["x", "y"]])
  with pytest.raises(errors.UserError,
                     match=r"reviews\.csv:1: missing column"):
    movielens_reviews.load_reviews(path)


def test_bundled_reviews_load_in_redial_form():
  stats = collections.Counter()
  reviews = movielens_reviews.load_reviews(SAMPLE_REVIEWS, stats=stats)
  assert len(reviews) == 12
  assert reviews[6] == (
      "The Matrix (1999)",
      "The action scenes still look fresh. The plot asks big questions "
      "about what is real. I was hooked.",
  )


def test_bundled_reviews_capped_per_movie_one_example_per_sentence():
  examples = movielens_reviews.review_examples(
      movielens_reviews.load_reviews(SAMPLE_REVIEWS))
  per_movie = collections.Counter(
      (ex["title"], ex["review_index"]) for ex in examples
  )
  # Toy Story: 6 reviews, capped at 5; the Matrix's 2 forms are one movie.
  assert {t for t, _ in per_movie} == {
      "Toy Story (1995)", "The Matrix (1999)", "Jumanji (1995)",
      "Heat (1995)"}
  assert max(i for t, i in per_movie if t == "Toy Story (1995)") == 4
  assert max(i for t, i in per_movie if t == "The Matrix (1999)") == 1
  # Sentences: 4+2+2+2+2 (Toy Story) + 3+2 + 2+2 + 3+2 = 26.
  assert len(examples) == 26


def test_bundled_reviews_split_by_movie():
  splits = movielens_reviews.build_review_examples(SAMPLE_REVIEWS, seed=42)
  assert len(splits["train"]) + len(splits["validation"]) == 26
  assert not {e["title"] for e in splits["train"]} & {
      e["title"] for e in splits["validation"]}
