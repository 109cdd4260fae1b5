"""Fixtures of the MovieLens tests: CSV files written from literal rows."""

import csv

import pytest

from crs_tasks import movielens_data


def write_csv(path, header, rows):
  """Writes a UTF-8 CSV with a header; returns its path as a string."""
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


@pytest.fixture(name="write_csv")
def _write_csv():
  """`write_csv(path, header, rows) -> str`."""
  return write_csv


@pytest.fixture(name="ml_movies")
def _ml_movies(tmp_path):
  """Eight MovieLens movies covering the title forms (articles, aliases)."""
  path = write_csv(
      tmp_path / "movies.csv",
      ["movieId", "title", "genres"],
      [
          [1, "Matrix, The (1999)", "Action|Sci-Fi"],
          [2, "Léon: The Professional (a.k.a. The Professional) (Léon) "
           "(1994)", "Action|Crime"],
          [3, "Willy Wonka & the Chocolate Factory (1971)", "Children"],
          [4, "Heat (1995)", "Crime"],
          [5, "Mummy, The (1999)", "Action"],
          [6, "Mummy, The (2017)", "Action"],
          [7, "Okja (2017)", "(no genres listed)"],
          [8, "City of God (Cidade de Deus) (2002)", "Drama"],
      ],
  )
  return movielens_data.load_movies(path)


@pytest.fixture(name="two_user_ratings")
def _two_user_ratings(tmp_path):
  """ratings.csv: user 1 likes movies 1..4, user 2 only two movies.

  User 1's timestamps are out of file order and the dislike (5) is the
  latest; movie 99 is not in movies.csv.
  """
  return write_csv(
      tmp_path / "ratings.csv",
      ["userId", "movieId", "rating", "timestamp"],
      [
          [1, 1, "4.0", 300],
          [1, 2, "5.0", 100],
          [1, 3, "4.5", 400],
          [1, 4, "4.0", 200],
          [1, 5, "3.5", 900],
          [1, 99, "5.0", 50],
          [2, 1, "4.0", 10],
          [2, 2, "4.0", 20],
      ],
  )
