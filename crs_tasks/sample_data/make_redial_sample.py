r"""Rebuilds crs_tasks/sample_data/redial/ from the ReDial release.

The bundled ReDial sample is an unmodified subset of ReDial (CC BY 4.0):

* `train_data.jsonl`: the first 200 lines of the train file
  (`train_data.jsonl`, or `train_partial.jsonl` as in ../shared/data);
* `test_data.jsonl`: the first 50 lines of `test_data.jsonl`;
* `movies_with_mentions.csv`: the header and the rows of every movie that
  those 250 dialogues mention (each `@<movieId>` in message text and each
  `movieMentions` key), in file order.

Lines are copied byte for byte. The MovieLens sample
(`make_movielens_sample.py`) uses the same selection.

Usage (from the repository root):

  python crs_tasks/sample_data/make_redial_sample.py \
      --redial_dir=../shared/data/redial
"""

import argparse
import json
import os
import re

NUM_TRAIN_DIALOGUES = 200
NUM_TEST_DIALOGUES = 50
TRAIN_NAMES = ("train_data.jsonl", "train_partial.jsonl")
_MENTION_RE = re.compile(r"@(\d+)")


def _head(src: str, dst: str, n: int) -> set[str]:
  """Copies the first n lines of src to dst; returns the movieIds in them."""
  ids = set()
  with open(src, "rb") as fin, open(dst, "wb") as fout:
    for i, line in enumerate(fin):
      if i >= n:
        break
      fout.write(line)
      dialogue = json.loads(line)
      ids.update((dialogue.get("movieMentions") or {}).keys())
      for message in dialogue["messages"]:
        ids.update(_MENTION_RE.findall(message["text"]))
  return ids


def make_sample(redial_dir: str, out_dir: str) -> dict[str, int]:
  """Writes the sample; returns the number of lines written per file."""
  os.makedirs(out_dir, exist_ok=True)
  train = next(
      (
          os.path.join(redial_dir, n)
          for n in TRAIN_NAMES
          if os.path.exists(os.path.join(redial_dir, n))
      ),
      None,
  )
  if train is None:
    raise FileNotFoundError(f"no {' or '.join(TRAIN_NAMES)} in {redial_dir}")
  ids = _head(
      train, os.path.join(out_dir, "train_data.jsonl"), NUM_TRAIN_DIALOGUES
  )
  ids |= _head(
      os.path.join(redial_dir, "test_data.jsonl"),
      os.path.join(out_dir, "test_data.jsonl"),
      NUM_TEST_DIALOGUES,
  )
  movies = 0
  with open(os.path.join(redial_dir, "movies_with_mentions.csv"), "rb") as fin:
    with open(os.path.join(out_dir, "movies_with_mentions.csv"), "wb") as fout:
      for i, line in enumerate(fin):
        if i == 0 or line.split(b",", 1)[0].decode() in ids:
          fout.write(line)
          movies += i > 0
  return {
      "train_data.jsonl": NUM_TRAIN_DIALOGUES,
      "test_data.jsonl": NUM_TEST_DIALOGUES,
      "movies_with_mentions.csv": movies,
      "mentioned_ids": len(ids),
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--redial_dir", default="../shared/data/redial")
  parser.add_argument(
      "--out_dir", default=os.path.join(os.path.dirname(__file__), "redial")
  )
  args = parser.parse_args(argv)
  print(make_sample(args.redial_dir, args.out_dir))


if __name__ == "__main__":
  main()
