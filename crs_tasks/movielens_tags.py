"""The `movielens tags` examples: random subsets of a movie's tags.

`build_tag_examples`: the tag genome's tags with relevance > 0.8 when the
release has it (`load_genome_tags`), else the users' tags
(`load_user_tags`), plus the genres; a few random subsets per movie, split
80/20 by movie. Deterministic for a given `seed`.
"""

import collections
import random
from typing import Mapping, Sequence

from crs_tasks import movielens_data
from crs_tasks import skipped_lines
from crs_tasks import titles


def load_genome_tags(
    scores_path: str, tags_path: str, *, min_relevance: float = 0.8
) -> dict[int, list[str]]:
  """Tag-genome tags of each movie with relevance > `min_relevance`.

  Args:
    scores_path: `genome-scores.csv` (`movieId,tagId,relevance`).
    tags_path: `genome-tags.csv` (`tagId,tag`).
    min_relevance: strict lower bound on relevance.

  Returns:
    movieId -> tags, most relevant first (ties by tag).
  """
  names = {}
  parse = movielens_data.parse_field
  skipped = skipped_lines.SkippedLines(tags_path)
  for line, row in movielens_data.read_csv(tags_path, ("tagId", "tag"),
                                           skipped):
    with skipped.guard(line):
      names[parse(row, "tagId", int, tags_path, line)] = titles.clean_text(
          row["tag"] or "")
  skipped.report()
  scored = collections.defaultdict(list)
  columns = ("movieId", "tagId", "relevance")
  skipped = skipped_lines.SkippedLines(scores_path)
  for line, row in movielens_data.read_csv(scores_path, columns, skipped):
    with skipped.guard(line):
      relevance = parse(row, "relevance", float, scores_path, line)
      if relevance <= min_relevance:
        continue
      tag_id = parse(row, "tagId", int, scores_path, line)
      if tag_id not in names:
        raise skipped_lines.MalformedLine(
            f"field 'tagId': {tag_id} not in {tags_path}",
            where=f"{scores_path}:{line}")
      movie = parse(row, "movieId", int, scores_path, line)
      scored[movie].append((-relevance, names[tag_id]))
  skipped.report()
  return {m: [tag for _, tag in sorted(v)] for m, v in scored.items()}


def load_user_tags(path: str) -> dict[int, list[str]]:
  """User tags of each movie from `tags.csv` (`userId,movieId,tag,...`).

  Tags are de-duplicated case-insensitively (keeping the first spelling) and
  ordered by how many times they were given, then by first appearance.

  Args:
    path: tags.csv.

  Returns:
    movieId -> tags.
  """
  counts = collections.defaultdict(collections.Counter)
  spelling = collections.defaultdict(dict)
  skipped = skipped_lines.SkippedLines(path)
  for line, row in movielens_data.read_csv(path, ("movieId", "tag"),
                                           skipped):
    with skipped.guard(line):
      movie = movielens_data.parse_field(row, "movieId", int, path, line)
      tag = titles.clean_text(row["tag"] or "")
      if not tag:
        continue
      key = tag.lower()
      spelling[movie].setdefault(key, tag)
      counts[movie][key] += 1
  skipped.report()
  out = {}
  for movie, counter in counts.items():
    order = list(spelling[movie])  # insertion order = first appearance
    keys = sorted(order, key=lambda k: (-counter[k], order.index(k)))
    out[movie] = [spelling[movie][k] for k in keys]
  return out


def movie_tags(
    movies: Mapping[int, movielens_data.Movie],
    tags: Mapping[int, Sequence[str]],
    *,
    add_genres: bool = True,
) -> dict[int, list[str]]:
  """Tags plus genres of each movie that has at least one tag.

  Args:
    movies: MovieLens movies (movies not here are skipped).
    tags: movieId -> tags (`load_genome_tags` or `load_user_tags`).
    add_genres: append the movie's genres not already among its tags.

  Returns:
    movieId -> tags, in movieId order.
  """
  out = {}
  for movie_id in sorted(tags):
    if movie_id not in movies or not tags[movie_id]:
      continue
    merged = list(tags[movie_id])
    if add_genres:
      seen = {t.lower() for t in merged}
      merged += [g for g in movies[movie_id].genres if g.lower() not in seen]
    out[movie_id] = merged
  return out


def tag_examples(
    movie_id: int,
    title: str,
    tags: Sequence[str],
    *,
    num_subsets: int,
    max_subset_size: int,
    seed: int,
) -> list[dict]:
  """Random tag subsets of one movie.

  Subset `i` has `rng.randint(1, min(len(tags), max_subset_size))` tags drawn
  with `rng.sample` from `rng = random.Random(f"{seed}/{movie_id}")`;
  duplicate subsets are dropped.

  Args:
    movie_id: MovieLens movieId.
    title: display title.
    tags: all tags of the movie.
    num_subsets: subsets to draw.
    max_subset_size: most tags per subset.
    seed: draw seed.

  Returns:
    `[{"movie_id", "title", "tags" (the subset), "all_tags",
    "subset_index"}]`; `subset_index` 0 exists for every movie.
  """
  rng = random.Random(f"{seed}/{movie_id}")
  out, seen = [], set()
  for _ in range(num_subsets):
    k = rng.randint(1, min(len(tags), max_subset_size))
    subset = rng.sample(list(tags), k)
    if tuple(subset) in seen:
      continue
    seen.add(tuple(subset))
    out.append({
        "movie_id": movie_id,
        "title": title,
        "tags": subset,
        "all_tags": list(tags),
        "subset_index": len(out),
    })
  return out


def build_tag_examples(
    movies: Mapping[int, movielens_data.Movie],
    tags: Mapping[int, Sequence[str]],
    *,
    add_genres: bool = True,
    num_subsets: int = 3,
    max_subset_size: int = 5,
    test_fraction: float = 0.2,
    seed: int = 42,
) -> dict[str, list[dict]]:
  """Builds the `movielens tags` examples, split 80/20 by movie.

  Args:
    movies: MovieLens movies.
    tags: movieId -> tags.
    add_genres: see `movie_tags`.
    num_subsets: see `tag_examples`.
    max_subset_size: see `tag_examples`.
    test_fraction: share of movies in "validation".
    seed: seed of the subsets and the split.

  Returns:
    {"train": [...], "validation": [...]} of `tag_examples` dicts.
  """
  merged = movie_tags(movies, tags, add_genres=add_genres)
  _, test_movies = movielens_data.split_keys(
      merged, test_fraction=test_fraction, seed=seed)
  splits = {"train": [], "validation": []}
  for movie_id, all_tags in merged.items():
    split = "validation" if movie_id in test_movies else "train"
    splits[split].extend(
        tag_examples(
            movie_id,
            movies[movie_id].title,
            all_tags,
            num_subsets=num_subsets,
            max_subset_size=max_subset_size,
            seed=seed,
        )
    )
  return splits
