"""ReDial's movie list, `movies_with_mentions.csv`: its one reader.

The file has the header `movieId,movieName,nbMentions` and one row per movie:

  movieId,movieName,nbMentions
  111776,Super Troopers (2001),1

Every user of the file reads it through `read_movie_list`: ReDial parsing
(the fallback titles of mentions, `redial_utils.load_movie_titles`), the
ReDial<->MovieLens matcher (`movielens_matching.load_redial_movies`), the
ranking protocols' candidates (`eval.ranking.load_movie_list`) and the chat
catalogue (`crs_chat.catalogue.load_catalogue`). So a bad file fails the
same way everywhere: a `UserError` naming `file:line`, the field and the
fix.
Names are returned as written; each caller cleans them (`titles.clean_text`,
`titles.split_title`) as its job needs.
"""

import csv
import dataclasses

from crs_runtime import errors

HEADER = ("movieId", "movieName", "nbMentions")


@dataclasses.dataclass(frozen=True)
class RedialMovie:
  """One row of `movies_with_mentions.csv`.

  Attributes:
    movie_id: `movieId` (digits), the id of `@111776` mentions.
    name: `movieName` as written, e.g. `"Super Troopers (2001)"` (raw: HTML
      entities and double spaces kept).
    mentions: `nbMentions`, the number of dialogues that mention it.
  """

  movie_id: str
  name: str
  mentions: int


def read_movie_list(path: str) -> list[RedialMovie]:
  """Reads `movies_with_mentions.csv`, in file order.

  Args:
    path: the CSV file.

  Returns:
    One `RedialMovie` per row.

  Raises:
    errors.UserError: naming `path:line` and the field: a header other than
      `movieId,movieName,nbMentions`, a `movieId` that is not a number or
      repeats an earlier row's, an empty `movieName`, an `nbMentions`
      that is not a non-negative integer, or a line that is not UTF-8.
  """
  movies, first_line = [], {}
  with open(path, "rb") as f:
    reader = csv.reader(errors.utf8_lines(f, path))
    header = next(reader, None)
    if not header or tuple(h.strip() for h in header[:3]) != HEADER:
      raise errors.UserError(
          f"expected the header {','.join(HEADER)}, got {header}",
          where=f"{path}:1",
          fix="give ReDial's movies_with_mentions.csv")
    line = reader.line_num + 1
    for row in reader:
      movies.append(_parse_row(row, f"{path}:{line}", first_line, line))
      line = reader.line_num + 1
  return movies


def _parse_row(row: list[str], where: str, first_line: dict[str, int],
               line: int) -> RedialMovie:
  """One row as a `RedialMovie`; `first_line` records each id's line."""

  def bad(what):
    return errors.UserError(what, where=where, fix="fix or delete that line")

  row = row + [""] * (len(HEADER) - len(row))
  movie_id, name, mentions = row[0].strip(), row[1], row[2].strip()
  if not movie_id.isdigit():
    raise bad(f"field 'movieId': {row[0]!r} is not a number")
  if movie_id in first_line:
    raise bad(f"field 'movieId': {movie_id} is already on line "
              f"{first_line[movie_id]}")
  if not name.strip():
    raise bad("field 'movieName': empty")
  if not mentions.isdigit():
    raise bad(f"field 'nbMentions': {row[2]!r} is not a non-negative integer")
  first_line[movie_id] = line
  return RedialMovie(movie_id, name, int(mentions))
