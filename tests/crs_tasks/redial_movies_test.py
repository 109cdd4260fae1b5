"""Tests of crs_tasks/redial_movies.py: the one reader of ReDial's movie list.

Its callers (`redial_utils.load_movie_titles`,
`movielens_matching.load_redial_movies`, `eval.ranking.load_movie_list`,
`crs_chat.catalogue.load_catalogue`) only shape its rows, so the file's
errors are specified here once.
"""

import os

import pytest

from crs_runtime import errors
from crs_tasks import redial_movies

TESTDATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "testdata")
HEADER = "movieId,movieName,nbMentions\n"


def _write(tmp_path, text):
  path = tmp_path / "movies_with_mentions.csv"
  path.write_text(text, encoding="utf-8")
  return str(path)


def test_reads_rows_in_file_order_with_raw_names():
  movies = redial_movies.read_movie_list(
      os.path.join(TESTDATA, "redial_movies.csv"))
  assert movies == [
      redial_movies.RedialMovie("111", "Heat  (1995)", 3),
      redial_movies.RedialMovie("444", "Alien (1979)", 2),
      redial_movies.RedialMovie("555", "Tom &amp; Jerry (1992)", 1),
  ]


def test_quoted_name_with_comma(tmp_path):
  path = _write(tmp_path, HEADER + '7,"Good, the Bad (1966)",4\n')
  assert redial_movies.read_movie_list(path) == [
      redial_movies.RedialMovie("7", "Good, the Bad (1966)", 4)]


@pytest.mark.parametrize("header", ["id,name,count\n", "movieName,movieId\n",
                                    ""])
def test_bad_header_names_file_line_one(tmp_path, header):
  path = _write(tmp_path, header + "1,Heat (1995),3\n" if header else "")
  with pytest.raises(errors.UserError) as e:
    redial_movies.read_movie_list(path)
  assert str(e.value).startswith(
      f"{path}:1: expected the header movieId,movieName,nbMentions")
  assert "movies_with_mentions.csv" in e.value.fix


@pytest.mark.parametrize("row, message", [
    ("x\n", r":3: field 'movieId': 'x' is not a number"),
    (",Up (2009),1\n", r":3: field 'movieId': '' is not a number"),
    ("2,,1\n", r":3: field 'movieName': empty"),
    ("2,Up (2009)\n", r":3: field 'nbMentions': '' is not a non-negative"),
    ("2,Up (2009),many\n", r":3: field 'nbMentions': 'many' is not"),
    ("2,Up (2009),-1\n", r":3: field 'nbMentions': '-1' is not"),
])
def test_bad_row_names_file_line_and_field(tmp_path, row, message):
  path = _write(tmp_path, HEADER + "1,Heat (1995),3\n" + row)
  with pytest.raises(errors.UserError, match=message) as e:
    redial_movies.read_movie_list(path)
  assert str(e.value).startswith(f"{path}:3: ")
  assert e.value.fix == "fix or delete that line"


def test_duplicate_id_names_both_lines(tmp_path):
  path = _write(tmp_path,
                HEADER + "1,Heat (1995),3\n2,Up (2009),2\n1,Heat (1986),1\n")
  with pytest.raises(errors.UserError,
                     match=r":4: field 'movieId': 1 is already on line 2"):
    redial_movies.read_movie_list(path)


def test_line_numbers_count_multiline_names(tmp_path):
  path = _write(tmp_path, HEADER + '1,"Heat\n(1995)",3\n2,,1\n')
  with pytest.raises(errors.UserError, match=r":4: field 'movieName'"):
    redial_movies.read_movie_list(path)
