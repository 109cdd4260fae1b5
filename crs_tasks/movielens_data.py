"""Reading MovieLens files: CSV rows, the `Movie` record, and key splits.

Everything here is plain Python over the CSV files of a MovieLens release
(`find_movielens_files` locates them), so the TFDS builder
(`crs_tasks/tfds_builders/movielens.py`) can do its cross-example joins
offline and the seqio preprocessors stay per-example. A bad line (bytes
that are not UTF-8, a value that does not parse: `parse_field`) is skipped
and counted, and each file's skipped lines are reported in one line naming
`file:line` and the field (`crs_tasks.skipped_lines`); a bad header stops
with an `errors.UserError`.

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
from crs_tasks import skipped_lines
from crs_tasks import titles

GENRES_NONE = "(no genres listed)"


def read_csv(
    path: str, required: Sequence[str],
    skipped: Optional[skipped_lines.SkippedLines] = None,
) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields `(line_number, row)` of a UTF-8 CSV file with a header.

  A line that is not valid UTF-8 is skipped and counted in `skipped`. A
  caller that parses the rows passes its own `skipped`, skips a bad row
  with `skipped.guard(line)` (`parse_field` raises `MalformedLine`) and
  calls `skipped.report()` at the end; without one, the skipped lines are
  reported when the file is read.

  Args:
    path: the CSV file.
    required: column names that must be in the header.
    skipped: counts the skipped lines (reported by the caller).

  Yields:
    The 1-based physical line where each row starts, and the row as a dict.

  Files over a few MB show a tqdm progress bar (bytes, with an ETA) once
  reading takes more than 2 s.

  Raises:
    errors.UserError: naming the file when the header is not valid UTF-8
      or a required column is missing.
  """
  own = skipped is None
  skipped = skipped_lines.SkippedLines(path) if own else skipped
  blanked = set()  # Lines skipped for their bytes.
  with open(path, "rb") as f:
    reader = csv.DictReader(
        _decoded(_with_progress(f, path), path, skipped, blanked))
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
      raise errors.UserError(
          f"missing column(s) {missing}; header is {reader.fieldnames}",
          where=f"{path}:1", fix=f"give a CSV whose header names "
          f"{', '.join(required)}")
    line = reader.line_num + 1
    for row in reader:
      while line in blanked:
        line += 1
      yield line, row
      line = reader.line_num + 1
  if own:
    skipped.report()


def _decoded(lines: Iterable[bytes], path: str,
             skipped: skipped_lines.SkippedLines,
             blanked: set[int]) -> Iterator[str]:
  """The lines as text; one that is not UTF-8 is skipped (counted).

  A skipped line becomes an empty one, which the CSV reader passes over
  (its number goes into `blanked`). The header must decode.
  """
  for number, raw in enumerate(lines, start=1):
    try:
      yield raw.decode("utf-8")
    except UnicodeDecodeError as e:
      if number == 1:
        raise errors.UserError(
            f"the header is {errors.utf8_error(raw, e)}",
            where=f"{path}:1", fix="convert the file to UTF-8 (e.g. iconv "
            "-f latin1 -t utf-8)") from None
      skipped.add(number, errors.utf8_error(raw, e))
      blanked.add(number)
      yield "\n"


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

  Raises:
    skipped_lines.MalformedLine: the value does not parse (a row that
      `SkippedLines.guard` skips; otherwise a one-line `UserError`).
  """
  value = row.get(field)
  try:
    out = conv(value)
  except (TypeError, ValueError) as e:
    raise skipped_lines.MalformedLine(
        f"field {field!r}: cannot parse {value!r} ({e})",
        where=f"{path}:{line}", fix="fix or delete that line") from None
  if isinstance(out, float) and not math.isfinite(out):
    raise skipped_lines.MalformedLine(
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

  A line with a bad or repeated movieId or an empty title is skipped and
  counted (`skipped_lines`: one summary line per file).

  Args:
    path: the movies.csv file.

  Returns:
    Mapping movieId -> `Movie`, in file order.
  """
  movies = {}
  skipped = skipped_lines.SkippedLines(path)
  for line, row in read_csv(path, ("movieId", "title", "genres"), skipped):
    with skipped.guard(line):
      movie_id = parse_field(row, "movieId", int, path, line)
      if movie_id in movies:
        raise skipped_lines.MalformedLine(
            f"field 'movieId': duplicate {movie_id}", where=f"{path}:{line}")
      name, aliases, year = titles.parse_ml_title(row["title"] or "")
      if not name:
        raise skipped_lines.MalformedLine("field 'title': empty",
                                          where=f"{path}:{line}")
      genres = tuple(g for g in (row["genres"] or "").split("|")
                     if g and g != GENRES_NONE)
      movies[movie_id] = Movie(movie_id, titles.format_title(name, year),
                               name, year, aliases, genres)
  skipped.report()
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
