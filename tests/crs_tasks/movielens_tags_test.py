"""Tests for crs_tasks/movielens_tags.py on literal tag files."""

import csv
import math

from crs_tasks import movielens_data
from crs_tasks import movielens_tags


def test_load_genome_tags_threshold_and_order(write_csv, tmp_path):
  scores = write_csv(
      tmp_path / "genome-scores.csv",
      ["movieId", "tagId", "relevance"],
      [[1, 1, 0.9], [1, 2, 0.95], [1, 3, 0.8], [2, 3, 0.81]],
  )
  tags = write_csv(
      tmp_path / "genome-tags.csv",
      ["tagId", "tag"],
      [[1, "dystopia"], [2, "cyberpunk"], [3, "heist"]],
  )
  assert movielens_tags.load_genome_tags(scores, tags) == {
      1: ["cyberpunk", "dystopia"],  # 0.8 is not > 0.8
      2: ["heist"],
  }


def test_load_user_tags_dedup_and_order(write_csv, tmp_path):
  path = write_csv(
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
  assert movielens_tags.load_user_tags(path) == {
      1: ["Pixar", "funny"], 2: ["dark"]}


def test_bad_tag_lines_are_skipped_and_reported(tmp_path, capsys):
  scores = tmp_path / "genome-scores.csv"
  scores.write_bytes(b"movieId,tagId,relevance\n1,1,0.9\n1,9,0.95\n"
                     b"x,1,0.99\n2,1,\xff\n")
  tags = tmp_path / "genome-tags.csv"
  tags.write_text("tagId,tag\n1,dystopia\none,heist\n")
  user_tags = tmp_path / "tags.csv"
  user_tags.write_text("userId,movieId,tag,timestamp\n1,1,funny,1\n"
                       "2,,Pixar,2\n")
  assert movielens_tags.load_genome_tags(str(scores), str(tags)) == {
      1: ["dystopia"]}
  assert movielens_tags.load_user_tags(str(user_tags)) == {1: ["funny"]}
  assert capsys.readouterr().err.splitlines() == [
      f"warning: skipped 1 malformed line of {tags}: line 3: field 'tagId': "
      "cannot parse 'one' (invalid literal for int() with base 10: 'one')",
      f"warning: skipped 3 malformed lines of {scores}: line 3: field "
      f"'tagId': 9 not in {tags}; line 4: field 'movieId': cannot parse 'x' "
      "(invalid literal for int() with base 10: 'x'); line 5: not valid "
      "UTF-8 (byte 0xff at column 5)",
      f"warning: skipped 1 malformed line of {user_tags}: line 3: field "
      "'movieId': cannot parse '' (invalid literal for int() with base 10: "
      "'')"]


def test_movie_tags_adds_genres(ml_movies):
  merged = movielens_tags.movie_tags(
      ml_movies, {1: ["action", "dystopia"], 4: [], 42: ["x"]})
  assert merged == {1: ["action", "dystopia", "Sci-Fi"]}


def test_tag_examples_subsets():
  tags = ["a", "b", "c", "d", "e", "f", "g"]
  out = movielens_tags.tag_examples(
      5, "T (2000)", tags, num_subsets=4, max_subset_size=3, seed=0
  )
  assert [ex["subset_index"] for ex in out] == list(range(len(out)))
  for ex in out:
    assert 1 <= len(ex["tags"]) <= 3
    assert set(ex["tags"]) <= set(tags)
    assert len(set(ex["tags"])) == len(ex["tags"])
    assert ex["all_tags"] == tags and ex["title"] == "T (2000)"
  assert out == movielens_tags.tag_examples(
      5, "T (2000)", tags, num_subsets=4, max_subset_size=3, seed=0
  )


def test_tag_examples_drop_duplicate_subsets():
  one = movielens_tags.tag_examples(1, "U", ["x"], num_subsets=3,
                                    max_subset_size=5, seed=0)
  assert [ex["tags"] for ex in one] == [["x"]]


def test_real_tags_one_movie_per_tagged_movie_split_by_movie(shared_data):
  root = shared_data / "movielens" / "ml-latest-small"
  movies = movielens_data.load_movies(str(root / "movies.csv"))
  tagged = set()
  with open(root / "tags.csv", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      if row["tag"].strip() and int(row["movieId"]) in movies:
        tagged.add(int(row["movieId"]))
  tag_splits = movielens_tags.build_tag_examples(
      movies, movielens_tags.load_user_tags(str(root / "tags.csv")))
  first = [ex for s in tag_splits.values() for ex in s
           if ex["subset_index"] == 0]
  assert {ex["movie_id"] for ex in first} == tagged
  assert math.isclose(
      sum(1 for ex in first if ex in tag_splits["validation"]),
      round(0.2 * len(tagged)),
  )
