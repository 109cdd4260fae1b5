"""Tests for crs_tasks/movielens_data.py: CSV reading, movies, key splits."""

import os

import pytest

from crs_runtime import errors
from crs_tasks import movielens_data


def test_load_movies_writes_titles_the_redial_way(ml_movies):
  assert ml_movies[1] == movielens_data.Movie(
      1, "The Matrix (1999)", "The Matrix", "1999", (), ("Action", "Sci-Fi")
  )
  assert ml_movies[2].aliases == ("The Professional", "Léon")


def test_load_movies_drops_no_genres_listed(ml_movies):
  assert ml_movies[7].genres == ()


def test_bad_value_names_file_line_and_field(write_csv, tmp_path):
  path = write_csv(tmp_path / "ratings.csv", ["userId", "rating"],
                   [[1, "4.0"], [1, "four"]])
  rows = list(movielens_data.read_csv(path, ("userId", "rating")))
  assert [line for line, _ in rows] == [2, 3]
  assert movielens_data.parse_field(rows[0][1], "rating", float, path,
                                    2) == 4.0
  with pytest.raises(errors.UserError,
                     match=r"ratings\.csv:3: field 'rating'"):
    movielens_data.parse_field(rows[1][1], "rating", float, path, 3)


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity"])
def test_non_finite_number_is_an_error(value):
  # float("nan") parses; a non-finite value must name file:line:field.
  with pytest.raises(errors.UserError,
                     match=r"r\.csv:7: field 'rating': .* not a finite"):
    movielens_data.parse_field({"rating": value}, "rating", float, "r.csv",
                               7)


def test_missing_column_names_file(write_csv, tmp_path):
  path = write_csv(tmp_path / "reviews.csv", ["movie", "review"],
                   [["x", "y"]])
  with pytest.raises(errors.UserError,
                     match=r"reviews\.csv:1: missing column"):
    list(movielens_data.read_csv(path, ("title", "review")))


def test_split_keys_is_a_seeded_partition():
  train, test = movielens_data.split_keys(range(10), test_fraction=0.2,
                                          seed=5)
  assert len(test) == 2 and len(train) == 8
  assert train | test == set(range(10)) and not train & test
  assert (train, test) == movielens_data.split_keys(
      list(reversed(range(10))), test_fraction=0.2, seed=5
  )
  with pytest.raises(ValueError):
    movielens_data.split_keys([1], test_fraction=1.5, seed=0)


def test_find_movielens_files(tmp_path):
  folder = tmp_path / "ml-latest-small"
  folder.mkdir()
  for name in ("movies.csv", "ratings.csv", "tags.csv"):
    (folder / name).write_text("x\n")
  files = movielens_data.find_movielens_files(str(tmp_path))
  assert sorted(files) == ["movies", "ratings", "tags"]
  assert files["movies"] == str(folder / "movies.csv")
  with pytest.raises(FileNotFoundError):
    movielens_data.find_movielens_files(str(tmp_path / "nowhere"))


def test_real_ml_latest_small_movies(shared_data):
  movies = movielens_data.load_movies(
      str(shared_data / "movielens" / "ml-latest-small" / "movies.csv"))
  assert len(movies) == 9742
  assert movies[2571].title == "The Matrix (1999)"


def test_bundled_sample_movies_load():
  sample = os.path.join(os.path.dirname(movielens_data.__file__),
                        "sample_data", "movielens", "movies.csv")
  movies = movielens_data.load_movies(sample)
  assert movies and all(m.title for m in movies.values())


def test_bad_lines_of_movies_csv_are_skipped_counted_and_reported(
    tmp_path, capsys):
  path = tmp_path / "movies.csv"
  path.write_bytes(b"movieId,title,genres\n"
                   b"1,Heat (1995),Action\n"
                   b"2,Am\xe9lie (2001),Comedy\n"  # Latin-1, not UTF-8.
                   b"x,Up (2009),Animation\n"
                   b"1,Heat again (1995),Action\n"
                   b"5,,Drama\n"
                   b"6,Alien (1979),Horror\n")
  movies = movielens_data.load_movies(str(path))
  assert sorted(movies) == [1, 6]
  assert movies[6].title == "Alien (1979)"
  assert capsys.readouterr().err == (
      f"warning: skipped 4 malformed lines of {path}: line 3: not valid "
      "UTF-8 (byte 0xe9 at column 5); line 4: field 'movieId': cannot parse "
      "'x' (invalid literal for int() with base 10: 'x'); line 5: field "
      "'movieId': duplicate 1; line 6: field 'title': empty\n")


def test_read_csv_alone_skips_bad_bytes_and_keeps_line_numbers(
    tmp_path, capsys):
  path = tmp_path / "links.csv"
  path.write_bytes(b"movieId,imdbId\n1,a\n2,\xff\n3,c\n")
  rows = list(movielens_data.read_csv(str(path), ("movieId",)))
  assert rows == [(2, {"movieId": "1", "imdbId": "a"}),
                  (4, {"movieId": "3", "imdbId": "c"})]
  assert capsys.readouterr().err == (
      f"warning: skipped 1 malformed line of {path}: line 3: not valid "
      "UTF-8 (byte 0xff at column 3)\n")


def test_summary_names_five_lines_then_counts(tmp_path, capsys):
  path = tmp_path / "movies.csv"
  path.write_text("movieId,title,genres\n" + "".join(
      f"m{i},T{i} (2000),Drama\n" for i in range(7)))
  assert movielens_data.load_movies(str(path)) == {}
  err = capsys.readouterr().err
  assert err.startswith(f"warning: skipped 7 malformed lines of {path}: "
                        "line 2: field 'movieId': cannot parse 'm0' ")
  assert "line 6: field 'movieId'" in err and "line 7:" not in err
  assert err.endswith("; and 2 more (all in the log)\n")


def test_bad_header_stops_with_one_error_line(tmp_path):
  path = tmp_path / "movies.csv"
  path.write_bytes(b"movieId,t\xeftle,genres\n1,Heat (1995),Action\n")
  with pytest.raises(errors.UserError) as e:
    movielens_data.load_movies(str(path))
  assert str(e.value) == (
      f"{path}:1: the header is not valid UTF-8 (byte 0xef at column 10). "
      "Fix: convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
  path.write_text("movieId,name,genres\n1,Heat (1995),Action\n")
  with pytest.raises(errors.UserError, match=r"movies.csv:1: missing "
                     r"column\(s\) \['title'\]"):
    movielens_data.load_movies(str(path))
