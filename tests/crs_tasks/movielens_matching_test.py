"""Tests for crs_tasks/movielens_matching.py on eight literal movies."""

import collections

import pytest

from crs_tasks import movielens_data
from crs_tasks import movielens_matching


@pytest.mark.parametrize(
    "redial, movie_id, how",
    [
        ("The Matrix  (1999)", 1, "exact"),
        ("Leon: The Professional (1994)", 2, "exact"),
        ("The Professional (1994)", 2, "exact"),  # alias
        ("Willy Wonka and the Chocolate Factory (1971)", 3, "exact"),
        ("Heat (1996)", 4, "year+-1"),
        ("Heat (1997)", None, "none"),
        ("Okja", 7, "no_year_unique"),
        ("The Mummy ", None, "ambiguous"),
        ("Cidade de Deus (2002)", 8, "exact"),
        ("Tom &amp; Jerry (1992)", None, "none"),
    ],
)
def test_title_matcher(ml_movies, redial, movie_id, how):
  matcher = movielens_matching.TitleMatcher(ml_movies)
  assert matcher.match(redial) == movielens_matching.Match(movie_id, how)


def test_match_redial_to_movielens_counts(ml_movies):
  matches, counts = movielens_matching.match_redial_to_movielens(
      {"10": "The Matrix (1999)", "11": "Heat (2020)", "12": "Okja"},
      ml_movies,
  )
  assert matches == {"10": 1, "12": 7}
  assert counts == collections.Counter(
      total=3, exact=1, none=1, no_year_unique=1
  )


def test_load_redial_movies_cleans_titles(write_csv, tmp_path):
  path = write_csv(tmp_path / "movies_with_mentions.csv",
                   ["movieId", "movieName", "nbMentions"],
                   [["111", "Heat  (1995)", 3],
                    ["555", "Tom &amp; Jerry (1992)", 1]])
  assert movielens_matching.load_redial_movies(path) == {
      "111": "Heat (1995)", "555": "Tom & Jerry (1992)"}


def test_real_redial_movies_matched_to_ml_latest_small(shared_data):
  redial = movielens_matching.load_redial_movies(
      str(shared_data / "redial" / "movies_with_mentions.csv"))
  movies = movielens_data.load_movies(
      str(shared_data / "movielens" / "ml-latest-small" / "movies.csv"))
  matches, counts = movielens_matching.match_redial_to_movielens(
      redial, movies)
  # The README's real-data table: 4,166 of 6,924 ReDial movies.
  assert counts["total"] == 6924
  assert len(matches) == 4166
