"""Matching ReDial movies to MovieLens movies by title and year.

`TitleMatcher` compares `titles.match_key(name)` plus the year: first the
exact year, then a year off by one; a ReDial title without a year matches
only a name that is unique in MovieLens. Used by the sample-data script
(`crs_tasks/sample_data/make_movielens_sample.py`) and
`bench/data_movielens.py`; the real-data share is asserted in
tests/crs_tasks/movielens_matching_test.py.
"""

import collections
import dataclasses
from typing import Mapping, Optional

from crs_tasks import movielens_data
from crs_tasks import redial_movies
from crs_tasks import titles

@dataclasses.dataclass(frozen=True)
class Match:
  """Result of matching one ReDial title: `movie_id` is None when unmatched.

  `how` is one of `"exact"`, `"year+-1"`, `"no_year_unique"`, `"none"`,
  `"ambiguous"`.
  """

  movie_id: Optional[int]
  how: str


class TitleMatcher:
  """Matches ReDial `"Title (Year)"` strings to MovieLens movies.

  Primary names win over aliases; among equal candidates the smallest
  movieId wins, so results are deterministic.
  """

  def __init__(self, movies: Mapping[int, movielens_data.Movie]):
    self._by_key_year = {}
    self._by_key = collections.defaultdict(set)
    for is_alias in (False, True):
      for movie in sorted(movies.values(), key=lambda m: m.movie_id):
        names = movie.aliases if is_alias else (movie.name,)
        for name in names:
          key = titles.match_key(name)
          if not key:
            continue
          self._by_key_year.setdefault((key, movie.year), movie.movie_id)
          if not is_alias:
            self._by_key[key].add(movie.movie_id)

  def match(self, redial_title: str) -> Match:
    """Matches one ReDial title.

    Args:
      redial_title: e.g. `"The Matrix  (1999)"`, `"Lilo & Stitch"`.

    Returns:
      A `Match`.
    """
    name, year = titles.split_title(redial_title)
    key = titles.match_key(name)
    if year is not None:
      found = self._by_key_year.get((key, year))
      if found is not None:
        return Match(found, "exact")
      for other in (int(year) - 1, int(year) + 1):
        found = self._by_key_year.get((key, str(other)))
        if found is not None:
          return Match(found, "year+-1")
      return Match(None, "none")
    candidates = self._by_key.get(key, set())
    if len(candidates) == 1:
      return Match(next(iter(candidates)), "no_year_unique")
    return Match(None, "ambiguous" if candidates else "none")


def load_redial_movies(path: str) -> dict[str, str]:
  """Reads ReDial `movies_with_mentions.csv` -> {movieId: cleaned title}
  (`redial_movies.read_movie_list`, `titles.clean_text`)."""
  return {m.movie_id: titles.clean_text(m.name)
          for m in redial_movies.read_movie_list(path)}


def match_redial_to_movielens(
    redial_titles: Mapping[str, str], movies: Mapping[int, movielens_data.Movie]
) -> tuple[dict[str, int], collections.Counter]:
  """Matches every ReDial movie to MovieLens.

  Args:
    redial_titles: ReDial movieId -> title (`load_redial_movies`).
    movies: MovieLens movies (`load_movies`).

  Returns:
    `(matches, counts)`: ReDial movieId -> MovieLens movieId for the matched
    ones, and a Counter of `Match.how` values (plus `"total"`).
  """
  matcher = TitleMatcher(movies)
  matches, counts = {}, collections.Counter()
  for redial_id, title in redial_titles.items():
    result = matcher.match(title)
    counts[result.how] += 1
    counts["total"] += 1
    if result.movie_id is not None:
      matches[redial_id] = result.movie_id
  return matches, counts
