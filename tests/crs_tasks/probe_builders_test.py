"""Tests of crs_tasks/probe_builders.py (and the movie_relatedness statistics
it draws from) on hand-made tables and real data."""

import collections
import csv
import dataclasses
import json
import math

import numpy as np
import pytest

from crs_tasks import movie_relatedness
from crs_tasks import movielens_reviews
from crs_tasks import preprocessors
from crs_tasks import probe_builders as builders
from crs_tasks import probe_io

# Liked sequences of users 1..7 (movieIds). By hand:
#   popularity: 1:5, 2:3, 3:2, 4:2, 5:3, 6:2, 7:1
#   co(1, .):   2:2, 3:2, 4:1, 5:1, 6:1, 7:1
#   PMI^2(1, y) = log(co^2 / (5 pop_y)):
#     y=3: 4/10 = .400, y=2: 4/15 = .267, y=7: 1/5 = .200,
#     y=4: 1/10, y=6: 1/10 (tie -> smaller id first), y=5: 1/15.
#   Plain PMI (co / (pop_x pop_y)) would tie 3 and 7 ahead of 2, and raw
#   co-occurrence would put 2 before 3: only PMI^2 gives [3, 2, 7, 4, 6, 5].
SEQUENCES = {
    1: [1, 2, 3],
    2: [1, 2],
    3: [1, 3, 4],
    4: [2, 5],
    5: [4, 5, 6],
    6: [1, 5],
    7: [1, 6, 7],
}
MOVIES = [
    (1, "Matrix, The (1999)", "Action|Sci-Fi"),
    (2, "Heat (1995)", "Crime"),
    (3, "Alien (1979)", "Horror|Sci-Fi"),
    (4, "Ronin (1998)", "Action"),
    (5, "Up (2009)", "Animation"),
    (6, "Big (1988)", "Comedy"),
    (7, "Brazil (1985)", "Sci-Fi"),
]
USER_TAGS = [(1, "cyberpunk"), (3, "sci-fi"), (5, "pixar")]
TITLES = {
    1: "the matrix (1999)",
    2: "heat (1995)",
    3: "alien (1979)",
    4: "ronin (1998)",
    5: "up (2009)",
    6: "big (1988)",
    7: "brazil (1985)",
}
# Probe movies: popularity >= 2 -> 1..6; popular: >= 3 -> {1, 2, 5}.
TINY = builders.ProbeConfig(
    min_liked=1,
    max_len=100,
    probe_min_sequences=2,
    popular_min_sequences=3,
    num_related=2,
)


def _write_movielens(folder):
  folder.mkdir(parents=True, exist_ok=True)
  with open(folder / "movies.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["movieId", "title", "genres"])
    w.writerows(MOVIES)
  with open(folder / "ratings.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["userId", "movieId", "rating", "timestamp"])
    for user, seq in SEQUENCES.items():
      for i, movie in enumerate(seq):
        w.writerow([user, movie, "4.0" if i % 2 else "5.0", 100 + i])
      w.writerow([user, 7 if user != 7 else 2, "3.5", 99])  # Not liked.
  with open(folder / "tags.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["userId", "movieId", "tag", "timestamp"])
    w.writerows([(1, m, t, 1) for m, t in USER_TAGS])
  return folder


@pytest.fixture
def tiny_data(tmp_path):
  return builders.load_probe_data(
      str(_write_movielens(tmp_path / "ml")), config=TINY
  )


def test_prefix_matches_redial_tasks():
  assert preprocessors.REDIAL_PREFIX == preprocessors.REDIAL_PREFIX


def test_cooccurrence_and_pmi2_by_hand():
  stats = movie_relatedness.cooccurrence(SEQUENCES.values())
  assert stats.num_sequences == 7
  assert dict(stats.popularity) == {1: 5, 2: 3, 3: 2, 4: 2, 5: 3, 6: 2, 7: 1}
  assert dict(stats.co[1]) == {2: 2, 3: 2, 4: 1, 5: 1, 6: 1, 7: 1}
  assert movie_relatedness.pmi2(2, 5, 2) == pytest.approx(math.log(0.4))
  assert movie_relatedness.pmi2(0, 5, 2) == -math.inf
  related = movie_relatedness.related_movies(stats, 1, range(1, 8), k=10)
  assert related == [3, 2, 7, 4, 6, 5]
  assert movie_relatedness.related_movies(
      stats, 1, [2, 4, 5, 6], k=2) == [2, 4]


def test_popularity_threshold_quantiles():
  pop = {10: 1, 11: 1, 12: 2, 13: 3, 14: 5}
  # Sorted [1, 1, 2, 3, 5]; "lower" quantile index floor(q * 4).
  assert movie_relatedness.popularity_threshold(pop, 0.75) == 3
  assert movie_relatedness.popularity_threshold(pop, 0.9) == 3
  assert movie_relatedness.popularity_threshold(pop, 1.0) == 5
  assert movie_relatedness.popularity_threshold(pop, 0.0, floor=2) == 2
  assert movie_relatedness.popularity_threshold(pop, 0.9, absolute=30) == 30
  with pytest.raises(ValueError, match="quantile"):
    movie_relatedness.popularity_threshold(pop, 1.5)


def test_load_probe_data_reads_likes_and_tags(tiny_data):
  assert sorted(map(sorted, tiny_data.sequences)) == sorted(
      sorted(s) for s in SEQUENCES.values()
  )
  assert tiny_data.tags[1] == ["cyberpunk", "Action", "Sci-Fi"]
  assert tiny_data.tags[3] == ["sci-fi", "Horror"]  # Genre deduplicated.
  assert 2 not in tiny_data.tags  # No user tag: no tags at all.
  assert tiny_data.reviews is None


def test_recommendation_probe_by_hand(tiny_data):
  builder = builders.ProbeBuilder(tiny_data, TINY)
  assert builder.probe_movies == [1, 2, 3, 4, 5, 6]
  assert builder.popular_movies == [1, 2, 5]
  examples = builder.build("recommendation")
  # Every probe movie co-occurs with >= 2 probe movies: 6 x 2 pairs.
  assert len(examples) == 12
  first = examples[0]
  # related(1) among probe movies = [3, 2]; negatives: popular movies other
  # than 1 and its related ones = {5}.
  assert first == {
      "probe": "recommendation",
      "pair_id": "recommendation/000000",
      "inputs": (
          "redial conversation: [user] can you recommend me a movie "
          "like @ the matrix (1999) @?"
      ),
      "targets": "sure, have you seen @ alien (1979) @?",
      "negative_targets": "sure, have you seen @ up (2009) @?",
      "query_movie": "the matrix (1999)",
      "positive_movie": "alien (1979)",
      "negative_movie": "up (2009)",
      "tag": "",
  }
  assert [ex["positive_movie"] for ex in examples[:2]] == [TITLES[3], TITLES[2]]
  for ex in examples:
    assert ex["negative_movie"] not in (ex["positive_movie"], ex["query_movie"])
    assert ex["negative_movie"] in {TITLES[m] for m in (1, 2, 5)}


def test_attribute_probe_by_hand(tiny_data):
  examples = builders.ProbeBuilder(tiny_data, TINY).build("attribute")
  # Movie 1: cyberpunk, action, sci-fi; 3: sci-fi, horror; 5: pixar,
  # animation. Popular movies with tags: 1 and 5.
  assert [
      (ex["positive_movie"], ex["tag"], ex["negative_movie"]) for ex in examples
  ] == [
      (TITLES[1], "cyberpunk", TITLES[5]),
      (TITLES[1], "action", TITLES[5]),
      (TITLES[1], "sci-fi", TITLES[5]),
      (TITLES[3], "sci-fi", TITLES[5]),
      (TITLES[3], "horror", examples[4]["negative_movie"]),
      (TITLES[5], "pixar", TITLES[1]),
      (TITLES[5], "animation", TITLES[1]),
  ]
  assert examples[4]["negative_movie"] in (TITLES[1], TITLES[5])
  assert examples[0]["inputs"] == (
      "redial conversation: [user] can you recommend me a cyberpunk movie?"
  )
  assert examples[0]["targets"] == "sure, have you seen @ the matrix (1999) @?"


def test_combination_probe_by_hand(tiny_data):
  examples = builders.ProbeBuilder(tiny_data, TINY).build("combination")
  # (1 -> 3) and (3 -> 1) share sci-fi; the only popular movie with tags
  # and without sci-fi is 5.
  assert [
      (ex["query_movie"], ex["positive_movie"], ex["tag"], ex["negative_movie"])
      for ex in examples
  ] == [
      (TITLES[1], TITLES[3], "sci-fi", TITLES[5]),
      (TITLES[3], TITLES[1], "sci-fi", TITLES[5]),
  ]
  assert examples[0]["inputs"] == (
      "redial conversation: [user] can you recommend me a sci-fi movie like "
      "@ the matrix (1999) @?"
  )
  assert examples[0]["targets"] == "sure, have you seen @ alien (1979) @?"


def test_description_probe_by_hand(tiny_data):
  reviews = [
      ("The Matrix (1999)", "A. B! C? D. E."),
      ("Up (2009)", "Sad. Happy."),
      ("Heat (1995)", "Long. Good."),
  ]
  data = dataclasses.replace(tiny_data, reviews=reviews)
  config = dataclasses.replace(TINY, review_test_fraction=1.0)
  examples = builders.ProbeBuilder(data, config).build("description")
  assert len(examples) == 3
  matrix = [ex for ex in examples if ex["positive_movie"] == TITLES[1]]
  assert matrix[0]["inputs"] == (
      "redial conversation: [user] what is your opinion on @ the matrix "
      "(1999) @?"
  )
  assert matrix[0]["targets"] == "a. b! c? d."  # First 4 sentences.
  for ex in examples:
    assert ex["negative_movie"] != ex["positive_movie"]
    assert ex["negative_targets"] != ex["targets"]
  none_held_out = builders.ProbeBuilder(
      data, dataclasses.replace(TINY, review_test_fraction=0.0)
  )
  assert none_held_out.build("description") == []
  no_file = builders.ProbeBuilder(tiny_data, TINY)
  assert no_file.build("description") == []
  assert no_file.stats["description/no_reviews_file"] == 1


def test_held_out_reviews_match_reviews_task_split():
  path = f"{builders.SAMPLE_DATA_DIR}/reviews/reviews.csv"
  reviews = movielens_reviews.load_reviews(path)
  data = builders.ProbeData(movies={}, sequences=[], reviews=reviews)
  held_out = builders.ProbeBuilder(data).held_out_reviews()
  validation = movielens_reviews.build_review_examples(path)["validation"]
  assert set(held_out) == {ex["title"] for ex in validation}


def test_max_pairs_and_determinism(tiny_data):
  config = dataclasses.replace(TINY, max_pairs=5)
  a = builders.ProbeBuilder(tiny_data, config).build("recommendation")
  b = builders.ProbeBuilder(tiny_data, config).build("recommendation")
  assert len(a) == 5 and a == b
  assert [ex["pair_id"] for ex in a] == [
      f"recommendation/{i:06d}" for i in range(5)
  ]
  with pytest.raises(ValueError, match="unknown probe"):
    builders.ProbeBuilder(tiny_data, TINY).build("nope")


def test_build_probe_files(tiny_data, tmp_path):
  stats = builders.build_probe_files(
      tiny_data, str(tmp_path / "out"), config=TINY
  )
  assert stats["counts"]["recommendation/pairs"] == 12
  assert stats["counts"]["description/pairs"] == 0
  assert not (tmp_path / "out" / "description.jsonl").exists()
  lines = (tmp_path / "out" / "attribute.jsonl").read_text().splitlines()
  assert len(lines) == 7
  assert set(json.loads(lines[0])) == set(probe_io.PROBE_FIELDS)


# ================================ Real data =================================


def _independent_sequences(ratings_path, known):
  """Latest 10 liked movies of users with >= 10 likes (csv + sorting)."""
  liked = collections.defaultdict(list)
  with open(ratings_path) as f:
    for row in csv.DictReader(f):
      if float(row["rating"]) >= 4.0 and int(row["movieId"]) in known:
        liked[row["userId"]].append(
            (int(row["timestamp"]), int(row["movieId"]))
        )
  return [
      [m for _, m in sorted(v)[-10:]] for v in liked.values() if len(v) >= 10
  ]


def test_real_data_probe_counts(shared_data):
  ml = shared_data / "movielens" / "ml-latest-small"
  data = builders.load_probe_data(str(ml))
  builder = builders.ProbeBuilder(data)
  # Independent popularity, thresholds and pair counts.
  with open(ml / "movies.csv") as f:
    known = {int(r["movieId"]) for r in csv.DictReader(f)}
  seqs = _independent_sequences(ml / "ratings.csv", known)
  pop = collections.Counter(m for s in seqs for m in set(s))
  counts = np.sort(np.array(list(pop.values())))
  probe_t = max(2, counts[int(0.75 * (len(counts) - 1))])
  popular_t = max(2, counts[int(0.9 * (len(counts) - 1))])
  assert (builder.probe_threshold, builder.popular_threshold) == (
      probe_t,
      popular_t,
  )
  probe = {m for m, c in pop.items() if c >= probe_t}
  partners = collections.defaultdict(set)
  for s in seqs:
    for x in s:
      partners[x].update(y for y in s if y != x and y in probe)
  expected_rec = sum(min(10, len(partners[x])) for x in probe)

  rec = builder.build("recommendation")
  assert len(rec) == expected_rec
  tags = {m: {t.lower() for t in v} for m, v in data.tags.items()}
  expected_attr = sum(len(tags.get(m, ())) for m in probe)
  attr = builder.build("attribute")
  assert len(attr) == expected_attr
  comb = builder.build("combination")
  assert comb and len(comb) <= len(rec) * 5
  assert builder.build("description") == []  # No reviews file given.
  popular = {
      data.movies[m].title.lower() for m, c in pop.items() if c >= popular_t
  }
  for ex in rec + attr + comb:
    assert ex["negative_movie"] != ex["positive_movie"]
    assert ex["negative_targets"] != ex["targets"]
    assert ex["negative_movie"] in popular
  ids = {movie.title.lower(): m for m, movie in data.movies.items()}
  for ex in attr + comb:
    assert ex["tag"] in tags[ids[ex["positive_movie"]]]
    assert ex["tag"] not in tags[ids[ex["negative_movie"]]]
