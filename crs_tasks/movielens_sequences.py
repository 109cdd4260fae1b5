"""The `movielens sequence` examples: a user's liked movies -> the next one.

`build_sequence_examples`: liked (rating >= 4.0) movies per user, users with
>= 10 of them, the latest 10 by timestamp shuffled, every prefix -> the next
movie, popular targets down-sampled with probability `min(1, sqrt(t /
freq))`, split 80/20 by user. Deterministic for a given `seed`.
"""

import collections
import heapq
import math
import random
from typing import Iterable, Mapping, Optional, Sequence

from crs_tasks import movielens_data
from crs_tasks import skipped_lines

def liked_sequences(
    ratings_path: str,
    *,
    min_rating: float = 4.0,
    min_liked: int = 10,
    max_len: int = 10,
    known_movies: Optional[Iterable[int]] = None,
    stats: Optional[collections.Counter] = None,
) -> dict[int, list[int]]:
  """Latest liked movies of each user, oldest first (streams ratings.csv).

  A line with a value that does not parse is skipped, counted in
  `stats["ratings_malformed"]` and reported (`crs_tasks.skipped_lines`).

  Args:
    ratings_path: MovieLens `ratings.csv` (`userId,movieId,rating,timestamp`).
    min_rating: a rating >= this is a "like".
    min_liked: users with fewer liked movies are dropped.
    max_len: how many of the latest liked movies to keep per user.
    known_movies: if given, ratings of other movies are skipped and counted
      in `stats["ratings_unknown_movie"]`.
    stats: optional Counter to add counts to.

  Returns:
    userId -> movieIds of the `max_len` latest liked movies sorted by
    (timestamp, movieId), for users with >= `min_liked` liked movies.
  """
  stats = stats if stats is not None else collections.Counter()
  known = set(known_movies) if known_movies is not None else None
  latest = collections.defaultdict(list)  # user -> min-heap (ts, movie)
  n_liked = collections.Counter()
  cols = ("userId", "movieId", "rating", "timestamp")
  parse = movielens_data.parse_field
  skipped = skipped_lines.SkippedLines(ratings_path)
  for line, row in movielens_data.read_csv(ratings_path, cols, skipped):
    with skipped.guard(line):
      rating = parse(row, "rating", float, ratings_path, line)
      if rating < min_rating:
        stats["ratings"] += 1
        continue
      movie = parse(row, "movieId", int, ratings_path, line)
      user = parse(row, "userId", int, ratings_path, line)
      stamp = parse(row, "timestamp", int, ratings_path, line)
      stats["ratings"] += 1
      if known is not None and movie not in known:
        stats["ratings_unknown_movie"] += 1
        continue
      n_liked[user] += 1
      heap = latest[user]
      heapq.heappush(heap, (stamp, movie))
      if len(heap) > max_len:
        heapq.heappop(heap)
  skipped.report()
  if skipped.lines:
    stats["ratings_malformed"] += len(skipped.lines)
  out = {}
  for user in sorted(latest):
    if n_liked[user] >= min_liked:
      out[user] = [movie for _, movie in sorted(latest[user])]
  stats["users_with_likes"] += len(latest)
  stats["users_kept"] += len(out)
  return out


def keep_probability(freq: float, t: float) -> float:
  """Down-sampling keep probability `min(1, sqrt(t / freq))`.

  Args:
    freq: the target's share of all examples, in (0, 1].
    t: threshold share; targets rarer than `t` are always kept.

  Returns:
    The probability of keeping an example with this target.
  """
  if freq <= 0:
    raise ValueError(f"freq must be > 0, got {freq}")
  return min(1.0, math.sqrt(t / freq))


def downsample_popular(
    examples: Sequence[dict], *, key: str, t: Optional[float], seed: int
) -> list[dict]:
  """Drops examples with popular targets (word2vec-style sub-sampling).

  Each example is kept when `random.Random(seed).random()` (one draw per
  example, in order) is below `keep_probability(freq, t)`, where `freq` is
  the share of `examples` whose `example[key]` equals this one's.

  Args:
    examples: feature dicts.
    key: the target field.
    t: threshold share; None keeps everything.
    seed: draw seed.

  Returns:
    The kept examples, in order.
  """
  if t is None or not examples:
    return list(examples)
  counts = collections.Counter(ex[key] for ex in examples)
  n = len(examples)
  rng = random.Random(seed)
  return [
      ex
      for ex in examples
      if rng.random() < keep_probability(counts[ex[key]] / n, t)
  ]


def sequence_examples(
    user_id: int, movie_ids: Sequence[int], titles: Mapping[int, str]
) -> list[dict]:
  """Every prefix of a user's sequence -> the next movie.

  Args:
    user_id: MovieLens userId.
    movie_ids: the user's movies in sequence order.
    titles: movieId -> display title.

  Returns:
    For `movie_ids=[1, 2, 3]`: `[{"user_id": u, "movies": [t1], "target":
    t2}, {"user_id": u, "movies": [t1, t2], "target": t3}]`.
  """
  names = [titles[m] for m in movie_ids]
  return [
      {"user_id": user_id, "movies": names[:i], "target": names[i]}
      for i in range(1, len(names))
  ]


def build_sequence_examples(
    movies: Mapping[int, movielens_data.Movie],
    ratings_path: str,
    *,
    min_rating: float = 4.0,
    min_liked: int = 10,
    max_len: int = 10,
    shuffle: bool = True,
    t: Optional[float] = 1e-3,
    test_fraction: float = 0.2,
    seed: int = 42,
    stats: Optional[collections.Counter] = None,
) -> dict[str, list[dict]]:
  """Builds the `movielens sequence` examples, split 80/20 by user.

  Steps: `liked_sequences`; shuffle each user's movies with
  `random.Random(f"{seed}/{user}")` if `shuffle`; `sequence_examples`;
  `downsample_popular` over all examples (frequencies over both splits);
  `split_keys` by user.

  Args:
    movies: MovieLens movies; ratings of other movies are skipped.
    ratings_path: ratings.csv.
    min_rating: like threshold.
    min_liked: minimum liked movies per user.
    max_len: latest liked movies kept per user (examples per user is
      `max_len - 1` before down-sampling).
    shuffle: shuffle each user's kept movies.
    t: down-sampling threshold share (None: no down-sampling).
    test_fraction: share of users in "validation".
    seed: seed of the shuffles, down-sampling and split.
    stats: optional Counter to add counts to.

  Returns:
    {"train": [...], "validation": [...]}, feature dicts with `user_id`,
    `movies` (titles) and `target` (title).
  """
  stats = stats if stats is not None else collections.Counter()
  sequences = liked_sequences(
      ratings_path,
      min_rating=min_rating,
      min_liked=min_liked,
      max_len=max_len,
      known_movies=movies.keys(),
      stats=stats,
  )
  titles = {m.movie_id: m.title for m in movies.values()}
  examples = []
  for user, seq in sequences.items():
    if shuffle:
      seq = list(seq)
      random.Random(f"{seed}/{user}").shuffle(seq)
    examples.extend(sequence_examples(user, seq, titles))
  stats["sequence_examples_before_downsampling"] += len(examples)
  examples = downsample_popular(examples, key="target", t=t, seed=seed)
  _, test_users = movielens_data.split_keys(
      sequences.keys(), test_fraction=test_fraction, seed=seed
  )
  return {
      "train": [ex for ex in examples if ex["user_id"] not in test_users],
      "validation": [ex for ex in examples if ex["user_id"] in test_users],
  }
