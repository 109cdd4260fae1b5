"""crs_tasks.redial_utils and the `crs_redial/full` builder on the real data.

Needs ../shared/data/redial (the `shared_data` fixture skips otherwise). Every
count is computed twice: by our parser and by `_independent_counts`, a short
direct reading of the raw json written for this test (runs of messages, ids
compared by movieId, quirks found with plain string checks). The literal
numbers were asserted only after the two agreed; they are also recorded in
the `crs_redial` builder docstring.
"""

import collections
import csv
import html
import json
import re

import pytest

from crs_tasks import redial_utils
from crs_tasks.tfds_builders import redial as redial_builder

pytestmark = pytest.mark.shared_data

# Checked against _independent_counts (both must match).
TEST_SPLIT = {
    "dialogues": 1342,
    "examples": 7978,
    "with_target_movies": 3671,
    "with_repeated_movies": 424,
    "recommender_first": 891,
    "empty_list_questions": 31,
    "html_entity_messages": 25,
    "titles_whitespace_normalized": 1031,
    "titles_without_year": 131,
    "mentions": 8521,
    "mentions_unresolved": 0,
}


def _independent_counts(jsonl, movies_csv):
  """Counts from the raw files, without crs_tasks code."""
  with open(movies_csv, encoding="utf-8") as f:
    csv_ids = {row["movieId"] for row in csv.DictReader(f)}
  c = collections.Counter()
  raw_titles = set()
  with open(jsonl, encoding="utf-8") as f:
    for line in f:
      d = json.loads(line)
      c["dialogues"] += 1
      mentions = d["movieMentions"] or {}
      for field in ("initiatorQuestions", "respondentQuestions"):
        c["empty_list_questions"] += d[field] == []
      raw_titles.update(t for t in mentions.values() if t and t.strip())
      # Runs of one speaker over non-empty messages: [(is_seeker, [ids])].
      runs = []
      for m in d["messages"]:
        if not m["text"].strip():
          continue
        c["html_entity_messages"] += html.unescape(m["text"]) != m["text"]
        ids = re.findall(r"@(\d+)", m["text"])
        c["mentions"] += len(ids)
        c["mentions_unresolved"] += sum(
            1 for i in ids if not (mentions.get(i) or i in csv_ids)
        )
        seeker = m["senderWorkerId"] == d["initiatorWorkerId"]
        if runs and runs[-1][0] == seeker:
          runs[-1][1].extend(ids)
        else:
          runs.append((seeker, list(ids)))
      c["recommender_first"] += bool(runs) and not runs[0][0]
      earlier = set()
      for seeker, ids in runs:
        if not seeker:
          c["examples"] += 1
          c["with_target_movies"] += bool(ids)
          c["with_repeated_movies"] += bool(set(ids) & earlier)
        earlier.update(ids)
  c["titles_whitespace_normalized"] = sum(
      " ".join(t.split()) != t for t in raw_titles
  )
  c["titles_without_year"] = sum(
      not re.search(r"\(\d{4}\)$", t.strip()) for t in raw_titles
  )
  return dict(c)


def test_test_split_counts(shared_data):
  redial = shared_data / "redial"
  independent = _independent_counts(
      redial / "test_data.jsonl", redial / "movies_with_mentions.csv"
  )
  summary = redial_utils.ParseSummary()
  examples = redial_utils.load_examples(
      str(redial / "test_data.jsonl"),
      movie_titles=redial_utils.load_movie_titles(
          str(redial / "movies_with_mentions.csv")
      ),
      summary=summary,
  )
  stats = redial_utils.split_counts(examples)
  ours = {
      "dialogues": summary.dialogues,
      "examples": len(examples),
      "with_target_movies": stats["with_target_movies"],
      "with_repeated_movies": stats["with_repeated_movies"],
      "recommender_first": summary.recommender_first,
      "empty_list_questions": summary.empty_list_questions,
      # No title in the file has an entity, so all are messages.
      "html_entity_messages": summary.html_entities,
      "titles_whitespace_normalized": summary.titles_whitespace_normalized,
      "titles_without_year": summary.titles_without_year,
      "mentions": summary.mentions,
      "mentions_unresolved": summary.mentions_unresolved,
  }
  assert ours == independent
  assert ours == TEST_SPLIT
  assert summary.malformed_lines == 0
  assert summary.examples_empty_context == summary.recommender_first
  # Every example's target titles appear, marked, in its target text.
  for ex in examples:
    for title in ex["target_movies"]:
      assert f"@ {title} @" in ex["response"]
    assert set(ex["target_movies_repeated"]) <= set(ex["context_movies"])


def test_train_partial_counts_match_independent(shared_data):
  redial = shared_data / "redial"
  independent = _independent_counts(
      redial / "train_partial.jsonl", redial / "movies_with_mentions.csv"
  )
  summary = redial_utils.ParseSummary()
  examples = redial_utils.load_examples(
      str(redial / "train_partial.jsonl"), summary=summary
  )
  assert len(examples) == independent["examples"] == 8781
  assert summary.recommender_first == independent["recommender_first"]
  assert summary.empty_list_questions == independent["empty_list_questions"]
  assert summary.empty_messages == 10


def test_split_generation_from_manual_dir(shared_data):
  files = redial_builder.find_redial_files(str(shared_data / "redial"))
  assert files["train"].endswith("train_partial.jsonl")
  splits = redial_builder.build_splits(files)
  sizes = {k: len(v) for k, v in splits.items()}
  assert sizes == {"train": 8022, "validation": 759, "test": 7978}
  train_ids = {ex["conversation_id"] for ex in splits["train"]}
  validation_ids = {ex["conversation_id"] for ex in splits["validation"]}
  assert not train_ids & validation_ids
  assert (len(train_ids), len(validation_ids)) == (1281, 120)
