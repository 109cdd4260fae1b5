"""Popularity and PMI^2 relatedness of movies over liked-movie sequences.

The probes (`probe_builders`) pick query, related and popular movies with
these: popularity(x) = number of sequences containing x; co(x, y) = number
containing both; PMI^2(x, y) = log(p(x, y)^2 / (p(x) p(y))) =
log(co^2 / (pop(x) pop(y))) (the sequence count cancels). Related movies
are ranked by PMI^2 (ties by movieId); pairs that never co-occur are never
related. `popularity_threshold` turns a popularity quantile into a minimum
sequence count.
"""

import collections
import dataclasses
import math
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np


@dataclasses.dataclass
class Cooccurrence:
  """Sequence statistics behind the probes.

  Attributes:
    num_sequences: number of sequences.
    popularity: movieId -> number of sequences containing it.
    co: movieId -> Counter of movieId -> sequences containing both
      (symmetric, no diagonal).
  """

  num_sequences: int
  popularity: collections.Counter
  co: dict


def cooccurrence(sequences: Iterable[Sequence[int]]) -> Cooccurrence:
  """Counts popularity and co-occurrence over sequences of movieIds.

  Args:
    sequences: e.g. `[[1, 2], [1, 3], [1, 2, 3]]`.

  Returns:
    For that example: popularity {1: 3, 2: 2, 3: 2}, co[1] = {2: 2, 3: 2},
    co[2] = {1: 2, 3: 1}, 3 sequences.
  """
  popularity = collections.Counter()
  co = collections.defaultdict(collections.Counter)
  n = 0
  for seq in sequences:
    n += 1
    movies = sorted(set(seq))
    popularity.update(movies)
    for i, x in enumerate(movies):
      for y in movies[i + 1 :]:
        co[x][y] += 1
        co[y][x] += 1
  return Cooccurrence(n, popularity, dict(co))


def pmi2(co_xy: int, pop_x: int, pop_y: int) -> float:
  """PMI^2 = log(co^2 / (pop_x pop_y)); -inf when they never co-occur."""
  if co_xy <= 0:
    return -math.inf
  return math.log(co_xy * co_xy / (pop_x * pop_y))


def popularity_threshold(
    popularity: Mapping[int, int],
    quantile: float,
    *,
    absolute: Optional[int] = None,
    floor: int = 1,
) -> int:
  """Minimum sequence count of a movie at the `quantile` of popularity.

  Args:
    popularity: movieId -> sequence count (movies with count >= 1).
    quantile: in [0, 1]; `np.quantile(counts, quantile, method="lower")`.
    absolute: if given, the threshold instead of the quantile.
    floor: the threshold is at least this.

  Returns:
    E.g. counts [1, 1, 2, 3, 5], quantile 0.75 -> index floor(0.75 * 4) = 3
    of the sorted counts -> 3.
  """
  if not 0.0 <= quantile <= 1.0:
    raise ValueError(f"quantile must be in [0, 1], got {quantile}")
  if absolute is not None:
    return max(floor, int(absolute))
  if not popularity:
    return floor
  counts = np.array(sorted(popularity.values()))
  return max(floor, int(np.quantile(counts, quantile, method="lower")))


def related_movies(
    stats: Cooccurrence, movie: int, candidates: Iterable[int], k: int
) -> list[int]:
  """The `k` candidates most related to `movie` by PMI^2.

  Args:
    stats: sequence statistics.
    movie: the query movieId.
    candidates: allowed movieIds (the query itself is never returned).
    k: how many.

  Returns:
    movieIds, highest PMI^2 first, ties by smaller movieId; only movies
    that co-occur with `movie` at least once.
  """
  allowed = set(candidates)
  pop_x = stats.popularity[movie]
  scored = [
      (-pmi2(c, pop_x, stats.popularity[y]), y)
      for y, c in stats.co.get(movie, {}).items()
      if y in allowed and y != movie and c > 0
  ]
  return [y for _, y in sorted(scored)[:k]]
