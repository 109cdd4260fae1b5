r"""Rebuilds crs_tasks/sample_data/movielens/ from ml-latest-small.

The bundled MovieLens sample is the ml-latest-small rows of the movies that the
bundled ReDial sample mentions:

1. ReDial sample = the first 200 dialogues of `redial/train_partial.jsonl`
   plus the first 50 of `redial/test_data.jsonl`; its movies are every
   `@<movieId>` in message text and every `movieMentions` key, looked up in
   `redial/movies_with_mentions.csv`.
2. Those titles are matched to ml-latest-small with
   `movielens_matching.TitleMatcher`; `movies.csv` and `links.csv` keep the
   matched movies, `tags.csv` every user tag of them.
3. `ratings.csv` keeps, for the first `NUM_USERS` users (by userId) with at
   least 10 ratings >= 4.0 on matched movies, all their ratings of matched
   movies. Ratings of other movies are never kept, so every sequence title is
   a ReDial-sample movie.

Usage (from the repository root):

  python crs_tasks/sample_data/make_movielens_sample.py \
      --shared_data=../shared/data

The output is deterministic; README.txt (the MovieLens license) is copied
beside the CSVs as its terms require.
"""

import argparse
import collections
import csv
import json
import os
import re
import shutil
import sys

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
)
from crs_tasks import movielens_data  # pylint: disable=g-import-not-at-top
from crs_tasks import movielens_matching  # pylint: disable=g-import-not-at-top

NUM_TRAIN_DIALOGUES = 200
NUM_TEST_DIALOGUES = 50
NUM_USERS = 40
MIN_RATING = 4.0
MIN_LIKED = 10

_MENTION_RE = re.compile(r"@(\d+)")


def redial_sample_movie_ids(redial_dir: str) -> set[str]:
  """ReDial movieIds mentioned by the bundled ReDial sample dialogues."""
  ids = set()
  for name, limit in (
      ("train_partial.jsonl", NUM_TRAIN_DIALOGUES),
      ("test_data.jsonl", NUM_TEST_DIALOGUES),
  ):
    with open(os.path.join(redial_dir, name), encoding="utf-8") as f:
      for i, line in enumerate(f):
        if i >= limit:
          break
        dialogue = json.loads(line)
        ids.update((dialogue.get("movieMentions") or {}).keys())
        for message in dialogue["messages"]:
          ids.update(_MENTION_RE.findall(message["text"]))
  return ids


def _copy_rows(src, dst, keep):
  """Copies the header and the rows where keep(row) is true; returns count."""
  n = 0
  with open(src, encoding="utf-8", newline="") as fin, open(
      dst, "w", encoding="utf-8", newline=""
  ) as fout:
    reader = csv.reader(fin)
    writer = csv.writer(fout, lineterminator="\n")
    header = next(reader)
    writer.writerow(header)
    for row in reader:
      if keep(dict(zip(header, row))):
        writer.writerow(row)
        n += 1
  return n


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shared_data", default="../shared/data")
  parser.add_argument(
      "--out_dir",
      default=os.path.join(os.path.dirname(__file__), "movielens"),
  )
  args = parser.parse_args(argv)
  redial_dir = os.path.join(args.shared_data, "redial")
  ml_dir = os.path.join(args.shared_data, "movielens", "ml-latest-small")
  os.makedirs(args.out_dir, exist_ok=True)

  redial_titles = movielens_matching.load_redial_movies(
      os.path.join(redial_dir, "movies_with_mentions.csv")
  )
  wanted = redial_sample_movie_ids(redial_dir)
  sample_titles = {i: redial_titles[i] for i in wanted if i in redial_titles}
  movies = movielens_data.load_movies(os.path.join(ml_dir, "movies.csv"))
  matches, counts = movielens_matching.match_redial_to_movielens(
      sample_titles, movies
  )
  matched = set(matches.values())

  liked = collections.Counter()
  with open(os.path.join(ml_dir, "ratings.csv"), encoding="utf-8") as f:
    for row in csv.DictReader(f):
      if int(row["movieId"]) in matched and float(row["rating"]) >= MIN_RATING:
        liked[int(row["userId"])] += 1
  users = sorted(u for u, n in liked.items() if n >= MIN_LIKED)[:NUM_USERS]
  users = set(users)

  def in_matched(row):
    return int(row["movieId"]) in matched

  n_movies = _copy_rows(
      os.path.join(ml_dir, "movies.csv"),
      os.path.join(args.out_dir, "movies.csv"),
      in_matched,
  )
  n_links = _copy_rows(
      os.path.join(ml_dir, "links.csv"),
      os.path.join(args.out_dir, "links.csv"),
      in_matched,
  )
  n_tags = _copy_rows(
      os.path.join(ml_dir, "tags.csv"),
      os.path.join(args.out_dir, "tags.csv"),
      in_matched,
  )
  n_ratings = _copy_rows(
      os.path.join(ml_dir, "ratings.csv"),
      os.path.join(args.out_dir, "ratings.csv"),
      lambda r: in_matched(r) and int(r["userId"]) in users,
  )
  shutil.copyfile(
      os.path.join(ml_dir, "README.txt"),
      os.path.join(args.out_dir, "README.txt"),
  )
  print(
      f"ReDial sample movies: {len(wanted)} ids, {len(sample_titles)} in the "
      f"movie list; matched to ml-latest-small: {len(matched)} movies "
      f"({dict(counts)})"
  )
  print(
      f"wrote {n_movies} movies, {n_links} links, {n_tags} tags, "
      f"{n_ratings} ratings of {len(users)} users to {args.out_dir}"
  )


if __name__ == "__main__":
  main()
