"""Reading MovieLens files: CSV rows, the `Movie` record, and key splits.

Everything here is plain Python over the CSV files of a MovieLens release
(`find_movielens_files` locates them), so the TFDS builder
(`crs_tasks/tfds_builders/movielens.py`) can do its cross-example joins
offline and the seqio preprocessors stay per-example. A bad value raises
`errors.UserError` naming `file:line` and the field (`parse_field`).

The three example builders read through this module:
`movielens_sequences` (liked-movie sequences), `movielens_tags` (tag genome
or user tags) and `movielens_reviews` (a reviews CSV). Each splits by a key
(user, movie, title) with `split_keys`.

To read another file: a loader over `read_csv` that returns plain dicts.
"""

import csv
import dataclasses
import math
import os
import random
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

from crs_runtime import errors
from crs_tasks import titles

GENRES_NONE = "(no genres listed)"


def read_csv(
    path: str, required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields `(line_number, row)` of a UTF-8 CSV file with a header.

  Args:
    path: the CSV file.
    required: column names that must be in the header.

  Yields:
    The 1-based physical line where each row starts, and the row as a dict.

  Files over a few MB show a tqdm progress bar (bytes, with an ETA) once
  reading takes more than 2 s.

  Raises:
    errors.UserError: naming the file when a required column is missing,
      and `file:line` of a line that is not valid UTF-8.
  """
  with open(path, "rb") as f:
    reader = csv.DictReader(errors.utf8_lines(_with_progress(f, path), path))
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
      raise errors.UserError(
          f"missing column(s) {missing}; header is {reader.fieldnames}",
          where=f"{path}:1", fix=f"give a CSV whose header names "
          f"{', '.join(required)}")
    line = reader.line_num + 1
    for row in reader:
      yield line, row
      line = reader.line_num + 1


def _with_progress(f, path: str, min_bytes: int = 4 << 20):
  """The lines of `f`, counted on a byte progress bar for big files."""
  size = os.path.getsize(path)
  if size < min_bytes:
    yield from f
    return
  import tqdm  # pylint: disable=g-import-not-at-top

  with tqdm.tqdm(total=size, unit="B", unit_scale=True, delay=2,
                 desc=f"reading {os.path.basename(path)}") as bar:
    for line in f:
      bar.update(len(line))
      yield line


def parse_field(
    row: Mapping[str, str],
    field: str,
    conv: Callable[[str], object],
    path: str,
    line: int,
):
  """Converts `row[field]` with `conv`, naming file, line and field on error.

  A float that is NaN or infinite is an error too (`float("nan")` parses).
  """
  value = row.get(field)
  try:
    out = conv(value)
  except (TypeError, ValueError) as e:
    raise errors.UserError(
        f"field {field!r}: cannot parse {value!r} ({e})",
        where=f"{path}:{line}", fix="fix or delete that line") from None
  if isinstance(out, float) and not math.isfinite(out):
    raise errors.UserError(
        f"field {field!r}: {value!r} is not a finite number",
        where=f"{path}:{line}", fix="fix or delete that line")
  return out


@dataclasses.dataclass(frozen=True)
class Movie:
  """One MovieLens movie.

  Attributes:
    movie_id: MovieLens `movieId`.
    title: ReDial-form display title, e.g. `"The Matrix (1999)"`.
    name: the title without year, e.g. `"The Matrix"`.
    year: the year as a string, or None.
    aliases: alternative names (articles in front, no year).
    genres: MovieLens genres, without `"(no genres listed)"`.
  """

  movie_id: int
  title: str
  name: str
  year: Optional[str]
  aliases: tuple[str, ...] = ()
  genres: tuple[str, ...] = ()


def load_movies(path: str) -> dict[int, Movie]:
  """Reads MovieLens `movies.csv` (`movieId,title,genres`).

  Args:
    path: the movies.csv file.

  Returns:
    Mapping movieId -> `Movie`, in file order.

  Raises:
    ValueError: on a bad or duplicate movieId (naming file and line).
  """
  movies = {}
  for line, row in read_csv(path, ("movieId", "title", "genres")):
    movie_id = parse_field(row, "movieId", int, path, line)
    if movie_id in movies:
      raise errors.UserError(f"field 'movieId': duplicate {movie_id}",
                             where=f"{path}:{line}")
    name, aliases, year = titles.parse_ml_title(row["title"] or "")
    if not name:
      raise errors.UserError("field 'title': empty", where=f"{path}:{line}")
    genres = tuple(
        g for g in (row["genres"] or "").split("|") if g and g != GENRES_NONE
    )
    movies[movie_id] = Movie(
        movie_id, titles.format_title(name, year), name, year, aliases, genres
    )
  return movies


def find_movielens_files(root: str) -> dict[str, str]:
  """Finds MovieLens CSVs in `root` or one sub-directory below it.

  Args:
    root: e.g. a folder holding `ml-25m/` or `ml-latest-small/`, or one of
      those folders itself.

  Returns:
    Mapping of `movies`, `ratings`, `tags`, `genome_scores`, `genome_tags`
    to paths that exist (missing keys for absent files).

  Raises:
    FileNotFoundError: when no movies.csv is found.
  """
  names = {
      "movies": "movies.csv",
      "ratings": "ratings.csv",
      "tags": "tags.csv",
      "genome_scores": "genome-scores.csv",
      "genome_tags": "genome-tags.csv",
  }
  candidates = [root] + sorted(
      os.path.join(root, d)
      for d in (os.listdir(root) if os.path.isdir(root) else [])
      if os.path.isdir(os.path.join(root, d))
  )
  for folder in candidates:
    if os.path.exists(os.path.join(folder, "movies.csv")):
      return {
          key: os.path.join(folder, name)
          for key, name in names.items()
          if os.path.exists(os.path.join(folder, name))
      }
  raise FileNotFoundError(f"no movies.csv in {root} or its sub-directories")


def split_keys(
    keys: Iterable, *, test_fraction: float, seed: int
) -> tuple[set, set]:
  """Splits keys (users, movies) into train/test sets, reproducibly.

  The sorted keys are shuffled with `random.Random(seed)` and the first
  `round(test_fraction * n)` go to test.

  Args:
    keys: hashable, sortable keys.
    test_fraction: share of keys in the test split, in [0, 1].
    seed: shuffle seed.

  Returns:
    `(train_keys, test_keys)`.
  """
  if not 0.0 <= test_fraction <= 1.0:
    raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
  ordered = sorted(set(keys))
  random.Random(seed).shuffle(ordered)
  n_test = int(round(test_fraction * len(ordered)))
  return set(ordered[n_test:]), set(ordered[:n_test])
