"""Tests for crs_tasks.movielens_utils on literal, hand-computable fixtures."""

import collections
import csv
import math
import random

import pytest

from crs_tasks import movielens_utils as mu


def _write(path, header, rows):
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


# ================================== Titles ==================================


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Matrix, The (1999)", "The Matrix (1999)"),
        ("Usual Suspects, The (1995)", "The Usual Suspects (1995)"),
        ("Beautiful Mind, A (2001)", "A Beautiful Mind (2001)"),
        ("American Tail, An (1986)", "An American Tail (1986)"),
        ("Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il)"
         " (1966)", "The Good, the Bad and the Ugly (1966)"),
        ("City of God (Cidade de Deus) (2002)", "City of God (2002)"),
        ("Seven (a.k.a. Se7en) (1995)", "Seven (1995)"),
        ("Avventura, L' (Adventure, The) (1960)", "L'Avventura (1960)"),
        ("Postman, The (Postino, Il) (1994)", "The Postman (1994)"),
        ("Boot, Das (Boat, The) (1981)", "Das Boot (1981)"),
        ("Vitelloni, I (1953)", "I Vitelloni (1953)"),
        ("Laberinto del fauno, El (2006)", "El Laberinto del fauno (2006)"),
        ("(500) Days of Summer (2009)", "(500) Days of Summer (2009)"),
        ("I, Robot (2004)", "I, Robot (2004)"),
        ("Black Mirror", "Black Mirror"),
        ("Stranger Things (2016-)", "Stranger Things (2016)"),
        ("  Heat   (1995) ", "Heat (1995)"),
    ],
)
def test_normalize_ml_title(raw, expected):
  assert mu.normalize_ml_title(raw) == expected


def test_parse_ml_title_keeps_aliases():
  name, aliases, year = mu.parse_ml_title(
      "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)"
  )
  assert (name, aliases, year) == (
      "Léon: The Professional", ("The Professional", "Léon"), "1994"
  )


def test_match_key_is_case_accent_and_punctuation_insensitive():
  assert mu.match_key("Léon: The Professional") == "leon the professional"
  assert mu.match_key("Willy Wonka & the Chocolate Factory") == (
      "willy wonka and the chocolate factory"
  )
  assert mu.match_key("Schindler's List") == mu.match_key("SCHINDLERS LIST")


def _movies(tmp_path):
  path = _write(
      tmp_path / "movies.csv",
      ["movieId", "title", "genres"],
      [
          [1, "Matrix, The (1999)", "Action|Sci-Fi"],
          [2, "Léon: The Professional (a.k.a. The Professional) (Léon) "
           "(1994)", "Action|Crime"],
          [3, "Willy Wonka & the Chocolate Factory (1971)", "Children"],
          [4, "Heat (1995)", "Crime"],
          [5, "Mummy, The (1999)", "Action"],
          [6, "Mummy, The (2017)", "Action"],
          [7, "Okja (2017)", "(no genres listed)"],
          [8, "City of God (Cidade de Deus) (2002)", "Drama"],
      ],
  )
  return mu.load_movies(path)


def test_load_movies(tmp_path):
  movies = _movies(tmp_path)
  assert movies[1] == mu.Movie(
      1, "The Matrix (1999)", "The Matrix", "1999", (), ("Action", "Sci-Fi")
  )
  assert movies[7].genres == ()


@pytest.mark.parametrize(
    "redial, movie_id, how",
    [
        ("The Matrix  (1999)", 1, "exact"),
        ("Leon: The Professional (1994)", 2, "exact"),
        ("The Professional (1994)", 2, "exact"),  # alias
        ("Willy Wonka and the Chocolate Factory (1971)", 3, "exact"),
        ("Heat (1996)", 4, "year+-1"),
        ("Heat (1997)", None, "none"),
        ("Okja", 7, "no_year_unique"),
        ("The Mummy ", None, "ambiguous"),
        ("Cidade de Deus (2002)", 8, "exact"),
        ("Tom &amp; Jerry (1992)", None, "none"),
    ],
)
def test_title_matcher(tmp_path, redial, movie_id, how):
  matcher = mu.TitleMatcher(_movies(tmp_path))
  assert matcher.match(redial) == mu.Match(movie_id, how)


def test_match_redial_to_movielens_counts(tmp_path):
  matches, counts = mu.match_redial_to_movielens(
      {"10": "The Matrix (1999)", "11": "Heat (2020)", "12": "Okja"},
      _movies(tmp_path),
  )
  assert matches == {"10": 1, "12": 7}
  assert counts == collections.Counter(
      total=3, exact=1, none=1, no_year_unique=1
  )


# ================================ CSV errors ================================


def test_bad_value_names_file_line_and_field(tmp_path):
  path = _write(
      tmp_path / "ratings.csv",
      ["userId", "movieId", "rating", "timestamp"],
      [[1, 1, "4.0", 10], [1, 2, "four", 11]],
  )
  with pytest.raises(ValueError, match=r"ratings\.csv:3: field 'rating'"):
    mu.liked_sequences(path)


def test_missing_column_names_file(tmp_path):
  path = _write(tmp_path / "reviews.csv", ["movie", "review"], [["x", "y"]])
  with pytest.raises(ValueError, match=r"reviews\.csv:1: missing column"):
    mu.load_reviews(path)


# ================================ Sequences =================================


def _two_user_ratings(tmp_path):
  # User 1 likes movies 1..4 (timestamps out of file order), dislikes 5
  # (latest). User 2 likes only 2 movies. Movie 99 is not in movies.csv.
  return _write(
      tmp_path / "ratings.csv",
      ["userId", "movieId", "rating", "timestamp"],
      [
          [1, 1, "4.0", 300],
          [1, 2, "5.0", 100],
          [1, 3, "4.5", 400],
          [1, 4, "4.0", 200],
          [1, 5, "3.5", 900],
          [1, 99, "5.0", 50],
          [2, 1, "4.0", 10],
          [2, 2, "4.0", 20],
      ],
  )


def test_liked_sequences_latest_by_timestamp(tmp_path):
  stats = collections.Counter()
  seqs = mu.liked_sequences(
      _two_user_ratings(tmp_path),
      min_liked=3,
      max_len=3,
      known_movies={1, 2, 3, 4, 5},
      stats=stats,
  )
  # User 1 liked (by time): 2@100, 4@200, 1@300, 3@400 -> latest 3.
  assert seqs == {1: [4, 1, 3]}
  assert stats["ratings_unknown_movie"] == 1
  assert stats["ratings"] == 8


def test_build_sequence_examples_exact(tmp_path):
  movies = _movies(tmp_path)
  splits = mu.build_sequence_examples(
      movies,
      _two_user_ratings(tmp_path),
      min_liked=3,
      max_len=3,
      shuffle=False,
      t=None,
      test_fraction=0.0,
  )
  # Sequence [4, 1, 3] = Heat, The Matrix, Willy Wonka.
  wonka = "Willy Wonka & the Chocolate Factory (1971)"
  assert splits == {
      "train": [
          {"user_id": 1, "movies": ["Heat (1995)"],
           "target": "The Matrix (1999)"},
          {"user_id": 1, "movies": ["Heat (1995)", "The Matrix (1999)"],
           "target": wonka},
      ],
      "validation": [],
  }


def test_sequence_shuffle_is_seeded_permutation(tmp_path):
  movies = {i: mu.Movie(i, f"M{i}", f"M{i}", None) for i in range(1, 13)}
  path = _write(
      tmp_path / "ratings.csv",
      ["userId", "movieId", "rating", "timestamp"],
      [[7, i, "5.0", 1000 + i] for i in range(1, 13)],
  )
  kwargs = dict(t=None, test_fraction=0.0)
  a = mu.build_sequence_examples(movies, path, seed=1, **kwargs)["train"]
  b = mu.build_sequence_examples(movies, path, seed=1, **kwargs)["train"]
  c = mu.build_sequence_examples(movies, path, seed=2, **kwargs)["train"]
  assert a == b
  assert len(a) == 9  # latest 10 liked -> prefixes of length 1..9
  order = a[-1]["movies"] + [a[-1]["target"]]
  assert sorted(order) == sorted(f"M{i}" for i in range(3, 13))
  assert order != [f"M{i}" for i in range(3, 13)] or c != a
  assert c[-1]["movies"] + [c[-1]["target"]] != order


def test_keep_probability_formula():
  assert mu.keep_probability(0.04, 0.01) == pytest.approx(0.5)
  assert mu.keep_probability(0.16, 0.01) == pytest.approx(0.25)
  assert mu.keep_probability(0.005, 0.01) == 1.0
  with pytest.raises(ValueError):
    mu.keep_probability(0.0, 0.01)


def test_downsample_popular_matches_explicit_draws():
  examples = [{"target": t} for t in "aaaab"]
  # freq(a) = 4/5, freq(b) = 1/5; t = 0.2 -> p(a) = sqrt(0.25) = 0.5, p(b) = 1.
  draws = random.Random(3)
  expected = [
      ex for ex in examples
      if draws.random() < {"a": 0.5, "b": 1.0}[ex["target"]]
  ]
  got = mu.downsample_popular(examples, key="target", t=0.2, seed=3)
  assert got == expected
  assert {"target": "b"} in got
  assert mu.downsample_popular(examples, key="target", t=None, seed=3) == (
      examples
  )


def test_downsample_popular_rate():
  examples = [{"target": "x"}] * 10000
  # freq = 1, t = 0.25 -> keep probability 0.5; 4 sigma = 200.
  kept = mu.downsample_popular(examples, key="target", t=0.25, seed=0)
  assert abs(len(kept) - 5000) < 200


def test_split_keys():
  train, test = mu.split_keys(range(10), test_fraction=0.2, seed=5)
  assert len(test) == 2 and len(train) == 8
  assert train | test == set(range(10)) and not train & test
  assert (train, test) == mu.split_keys(
      list(reversed(range(10))), test_fraction=0.2, seed=5
  )
  with pytest.raises(ValueError):
    mu.split_keys([1], test_fraction=1.5, seed=0)


# =================================== Tags ===================================


def test_load_genome_tags_threshold_and_order(tmp_path):
  scores = _write(
      tmp_path / "genome-scores.csv",
      ["movieId", "tagId", "relevance"],
      [[1, 1, 0.9], [1, 2, 0.95], [1, 3, 0.8], [2, 3, 0.81]],
  )
  tags = _write(
      tmp_path / "genome-tags.csv",
      ["tagId", "tag"],
      [[1, "dystopia"], [2, "cyberpunk"], [3, "heist"]],
  )
  assert mu.load_genome_tags(scores, tags) == {
      1: ["cyberpunk", "dystopia"],  # 0.8 is not > 0.8
      2: ["heist"],
  }


def test_load_user_tags_dedup_and_order(tmp_path):
  path = _write(
      tmp_path / "tags.csv",
      ["userId", "movieId", "tag", "timestamp"],
      [
          [1, 1, "funny", 1],
          [2, 1, "Pixar", 2],
          [3, 1, "pixar", 3],
          [4, 2, "dark", 4],
          [5, 1, "  ", 5],
      ],
  )
  assert mu.load_user_tags(path) == {1: ["Pixar", "funny"], 2: ["dark"]}


def test_movie_tags_adds_genres(tmp_path):
  movies = _movies(tmp_path)
  merged = mu.movie_tags(movies, {1: ["action", "dystopia"], 4: [], 42: ["x"]})
  assert merged == {1: ["action", "dystopia", "Sci-Fi"]}


def test_tag_examples_subsets():
  tags = ["a", "b", "c", "d", "e", "f", "g"]
  out = mu.tag_examples(
      5, "T (2000)", tags, num_subsets=4, max_subset_size=3, seed=0
  )
  assert [ex["subset_index"] for ex in out] == list(range(len(out)))
  for ex in out:
    assert 1 <= len(ex["tags"]) <= 3
    assert set(ex["tags"]) <= set(tags)
    assert len(set(ex["tags"])) == len(ex["tags"])
    assert ex["all_tags"] == tags and ex["title"] == "T (2000)"
  assert out == mu.tag_examples(
      5, "T (2000)", tags, num_subsets=4, max_subset_size=3, seed=0
  )
  one = mu.tag_examples(1, "U", ["x"], num_subsets=3, max_subset_size=5,
                        seed=0)
  assert [ex["tags"] for ex in one] == [["x"]]  # duplicates dropped


# ================================= Reviews ==================================


def test_split_sentences():
  assert mu.split_sentences(
      'Great film. I loved it!  Would I watch again? "Yes." Sure'
  ) == ["Great film.", "I loved it!", "Would I watch again?", '"Yes."',
        "Sure"]


def test_review_examples_context_and_cap():
  reviews = [("Up (2009)", "Sad. Then happy. The end.")] + [
      ("Heat (1995)", f"Review {i}.") for i in range(7)
  ]
  out = mu.review_examples(reviews, max_reviews_per_movie=5,
                           max_context_sentences=1)
  assert out[:3] == [
      {"title": "Up (2009)", "context": "", "target": "Sad.",
       "review_index": 0, "sentence_index": 0},
      {"title": "Up (2009)", "context": "Sad.", "target": "Then happy.",
       "review_index": 0, "sentence_index": 1},
      {"title": "Up (2009)", "context": "Then happy.", "target": "The end.",
       "review_index": 0, "sentence_index": 2},
  ]
  assert [ex["target"] for ex in out[3:]] == [f"Review {i}." for i in range(5)]


def test_reviews_fixture(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  path = os.path.join(
      os.path.dirname(mu.__file__), "sample_data", "reviews", "reviews.csv"
  )
  stats = collections.Counter()
  reviews = mu.load_reviews(path, stats=stats)
  assert len(reviews) == 12
  assert reviews[6] == (
      "The Matrix (1999)",
      "The action scenes still look fresh. The plot asks big questions "
      "about what is real. I was hooked.",
  )
  examples = mu.review_examples(reviews)
  per_movie = collections.Counter(
      (ex["title"], ex["review_index"]) for ex in examples
  )
  # Toy Story: 6 reviews, capped at 5; the Matrix's 2 forms are one movie.
  assert {t for t, _ in per_movie} == {
      "Toy Story (1995)", "The Matrix (1999)", "Jumanji (1995)",
      "Heat (1995)"}
  assert max(i for t, i in per_movie if t == "Toy Story (1995)") == 4
  assert max(i for t, i in per_movie if t == "The Matrix (1999)") == 1
  # Sentences: 4+2+2+2+2 (Toy Story) + 3+2 + 2+2 + 3+2 = 26.
  assert len(examples) == 26
  splits = mu.build_review_examples(path, seed=42)
  assert len(splits["train"]) + len(splits["validation"]) == 26
  assert not {e["title"] for e in splits["train"]} & {
      e["title"] for e in splits["validation"]}


def test_find_movielens_files(tmp_path):
  folder = tmp_path / "ml-latest-small"
  folder.mkdir()
  for name in ("movies.csv", "ratings.csv", "tags.csv"):
    (folder / name).write_text("x\n")
  files = mu.find_movielens_files(str(tmp_path))
  assert sorted(files) == ["movies", "ratings", "tags"]
  assert files["movies"] == str(folder / "movies.csv")
  with pytest.raises(FileNotFoundError):
    mu.find_movielens_files(str(tmp_path / "nowhere"))


# ============================ Real ml-latest-small ===========================


def test_real_ml_latest_small(shared_data):
  root = shared_data / "movielens" / "ml-latest-small"
  movies = mu.load_movies(str(root / "movies.csv"))
  assert len(movies) == 9742
  assert movies[2571].title == "The Matrix (1999)"
  # Independent count: users with >= 10 ratings >= 4.0.
  liked = collections.Counter()
  with open(root / "ratings.csv", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      if float(row["rating"]) >= 4.0:
        liked[row["userId"]] += 1
  n_users = sum(1 for n in liked.values() if n >= 10)
  splits = mu.build_sequence_examples(
      movies, str(root / "ratings.csv"), t=None, seed=42
  )
  assert len(splits["train"]) + len(splits["validation"]) == 9 * n_users
  val_users = {ex["user_id"] for ex in splits["validation"]}
  assert len(val_users) == round(0.2 * n_users)
  assert not val_users & {ex["user_id"] for ex in splits["train"]}
  # Down-sampling keeps fewer, never more.
  down = mu.build_sequence_examples(
      movies, str(root / "ratings.csv"), t=1e-3, seed=42
  )
  n_down = len(down["train"]) + len(down["validation"])
  assert 0 < n_down < 9 * n_users
  # Tags: one movie per tagged movie, genres appended.
  tagged = set()
  with open(root / "tags.csv", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      if row["tag"].strip() and int(row["movieId"]) in movies:
        tagged.add(int(row["movieId"]))
  tag_splits = mu.build_tag_examples(movies, mu.load_user_tags(
      str(root / "tags.csv")))
  first = [ex for s in tag_splits.values() for ex in s
           if ex["subset_index"] == 0]
  assert {ex["movie_id"] for ex in first} == tagged
  assert math.isclose(
      sum(1 for ex in first if ex in tag_splits["validation"]),
      round(0.2 * len(tagged)),
  )


def test_bundled_sample_statistics():
  import os  # pylint: disable=g-import-not-at-top
  sample = os.path.join(os.path.dirname(mu.__file__), "sample_data",
                        "movielens")
  movies = mu.load_movies(os.path.join(sample, "movies.csv"))
  stats = collections.Counter()
  splits = mu.build_sequence_examples(
      movies, os.path.join(sample, "ratings.csv"), t=1e-2, seed=42,
      stats=stats,
  )
  # Subset rule (SUBSET.md): 40 users with >= 10 liked matched movies, so
  # 40 x 9 prefixes before down-sampling, 8 users in validation.
  assert stats["users_kept"] == 40
  assert stats["sequence_examples_before_downsampling"] == 360
  assert len({ex["user_id"] for ex in splits["validation"]}) == 8
  assert 200 < len(splits["train"]) + len(splits["validation"]) <= 360
