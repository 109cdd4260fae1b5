"""Tests of crs_tasks/redial_utils.py on hand-written dialogues.

`tests/testdata/redial_quirks.jsonl` (hand-written) holds every quirk of the
real files: an empty-list questionnaire, HTML entities in text and titles,
titles with double spaces or without a year, an `@id` missing from
`movieMentions` (resolved by `redial_movies.csv`) and one found nowhere,
consecutive messages, a dialogue where the recommender speaks first, a line
that is not JSON and a line without `messages`. Every expected value below
was written by hand from that file.
"""

import json
import os
import re

import pytest

from crs_tasks import redial_utils

TESTDATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "testdata")
QUIRKS = os.path.join(TESTDATA, "redial_quirks.jsonl")
MOVIES = os.path.join(TESTDATA, "redial_movies.csv")

EXPECTED_EXAMPLES = [
    {
        "conversation_id": "1001",
        "turn_index": 1,
        "context": "[User] Hi, I like @ Heat (1995) @",
        "response": "Have you seen @ American Pie @ ? It's great",
        "seeker_movies": ["Heat (1995)"],
        "recommender_movies": ["American Pie", "Up (2009)"],
        "target_movies": ["American Pie"],
        "target_movies_repeated": [],
        "context_movies": ["Heat (1995)"],
    },
    {
        "conversation_id": "1001",
        "turn_index": 3,
        "context": (
            "[User] Hi, I like @ Heat (1995) @ [Assistant] Have you seen "
            "@ American Pie @ ? It's great [User] I have seen @ American Pie @"
        ),
        "response": "Then try @ Up (2009) @ or @ Alien (1979) @",
        "seeker_movies": ["Heat (1995)"],
        "recommender_movies": ["American Pie", "Up (2009)"],
        "target_movies": ["Up (2009)", "Alien (1979)"],
        "target_movies_repeated": [],
        "context_movies": ["American Pie", "Heat (1995)"],
    },
    {
        "conversation_id": "1002",
        "turn_index": 0,
        "context": "",
        "response": "Hello! Seen @ Jaws (1975) @?",
        # The initiator's answer (0) overrides the respondent's (1).
        "seeker_movies": ["Tom & Jerry (1992)"],
        "recommender_movies": ["Jaws (1975)"],
        "target_movies": ["Jaws (1975)"],
        "target_movies_repeated": [],
        "context_movies": [],
    },
    {
        "conversation_id": "1002",
        "turn_index": 2,
        "context": (
            "[Assistant] Hello! Seen @ Jaws (1975) @? [User] Yes, and "
            "@ Tom & Jerry (1992) @ too also"
        ),
        "response": "Then @ Jaws (1975) @ again, or @ Tom & Jerry (1992) @",
        "seeker_movies": ["Tom & Jerry (1992)"],
        "recommender_movies": ["Jaws (1975)"],
        "target_movies": ["Jaws (1975)", "Tom & Jerry (1992)"],
        "target_movies_repeated": ["Jaws (1975)", "Tom & Jerry (1992)"],
        "context_movies": ["Tom & Jerry (1992)", "Jaws (1975)"],
    },
]


def _dialogue(messages, mentions=None, **kwargs):
  """A minimal dialogue; messages are (sender, text) pairs."""
  d = {
      "conversationId": "7",
      "initiatorWorkerId": 1,
      "respondentWorkerId": 2,
      "movieMentions": mentions or {},
      "initiatorQuestions": {},
      "respondentQuestions": {},
      "messages": [
          {"senderWorkerId": s, "text": t, "messageId": i, "timeOffset": i}
          for i, (s, t) in enumerate(messages)
      ],
  }
  d.update(kwargs)
  return d


@pytest.fixture(name="quirks", scope="module")
def _quirks():
  """`(examples, summary)` of the quirks file, titles resolved by the CSV."""
  summary = redial_utils.ParseSummary()
  examples = redial_utils.load_examples(
      QUIRKS,
      movie_titles=redial_utils.load_movie_titles(MOVIES),
      summary=summary,
  )
  return examples, summary


def test_quirks_examples_exactly(quirks):
  examples, _ = quirks
  assert examples == EXPECTED_EXAMPLES


def test_quirks_summary_counts(quirks):
  _, summary = quirks
  assert summary.counts() == {
      "dialogues": 2,
      "examples": 4,
      "examples_empty_context": 1,
      "malformed_lines": 2,
      "empty_list_questions": 1,
      # "It&#39;s  great" and "Tom &amp; Jerry (1992)".
      "html_entities": 2,
      # "Heat  (1995)" and "American Pie ".
      "titles_whitespace_normalized": 2,
      "titles_without_year": 1,
      "mentions": 10,
      "mentions_from_csv": 1,  # @444 -> Alien (1979).
      "mentions_unresolved": 1,  # @999.
      "recommender_first": 1,
      "merged_messages": 2,
      "empty_messages": 0,
  }


def test_malformed_lines_reported_with_file_and_line(quirks):
  _, summary = quirks
  assert len(summary.malformed_locations) == 2
  assert summary.malformed_locations[0].startswith("redial_quirks.jsonl:3: ")
  assert summary.malformed_locations[1] == (
      "redial_quirks.jsonl:4: missing field(s) ['messages']")


def test_strict_raises_naming_file_and_line():
  with pytest.raises(ValueError, match=r"redial_quirks\.jsonl:3: "):
    redial_utils.load_examples(QUIRKS, strict=True)


def test_without_csv_the_unknown_id_is_dropped_and_located(caplog):
  summary = redial_utils.ParseSummary()
  examples = redial_utils.load_examples(QUIRKS, summary=summary)
  # "@444" is in neither movieMentions nor a CSV: dropped, never "@444".
  assert examples[1]["response"] == "Then try @ Up (2009) @ or"
  assert examples[1]["target_movies"] == ["Up (2009)"]
  assert summary.mentions_unresolved == 2
  assert summary.mentions_from_csv == 0
  # Line 1 holds @444 (with the CSV it resolves to Alien), line 2 @999.
  assert summary.unresolved_locations == [
      "redial_quirks.jsonl:1: @444", "redial_quirks.jsonl:2: @999"]
  assert "redial_quirks.jsonl:2: @999" in caplog.text
  for example in examples:
    assert not re.search(r"@\d", example["context"] + example["response"])


def test_no_recommender_turn_gives_no_example():
  assert redial_utils.dialogue_to_examples(
      _dialogue([(1, "hi"), (1, "yo")])) == []


def test_glued_mention_gets_a_space_and_keeps_punctuation():
  (example,) = redial_utils.dialogue_to_examples(
      _dialogue([(2, "see:@5, ok")], {"5": "Heat (1995)"})
  )
  assert example["response"] == "see: @ Heat (1995) @, ok"


def test_unlabelled_movie_is_a_recommender_movie():
  (example,) = redial_utils.dialogue_to_examples(
      _dialogue(
          [(2, "@5 or @6")],
          {"5": "Heat (1995)", "6": "Up (2009)"},
          respondentQuestions={"6": {"suggested": 0}},
      )
  )
  assert example["seeker_movies"] == ["Up (2009)"]
  assert example["recommender_movies"] == ["Heat (1995)"]


def test_duplicate_mentions_within_a_turn_listed_once():
  (example,) = redial_utils.dialogue_to_examples(
      _dialogue([(2, "@5 is @5")], {"5": "Heat (1995)"})
  )
  assert example["target_movies"] == ["Heat (1995)"]
  assert example["target_movies_repeated"] == []


def test_empty_message_does_not_split_a_turn():
  examples = redial_utils.dialogue_to_examples(
      _dialogue([(1, "hi"), (2, "a"), (1, "  "), (2, "b")])
  )
  assert [e["response"] for e in examples] == ["a b"]


def test_validation_split_deterministic_seeded_and_about_ten_percent():
  ids = [str(i) for i in range(20000, 24000)]
  a = [redial_utils.is_validation(i, seed=42) for i in ids]
  assert a == [redial_utils.is_validation(i, seed=42) for i in ids]
  assert a != [redial_utils.is_validation(i, seed=7) for i in ids]
  assert 0.085 <= sum(a) / len(ids) <= 0.115
  assert not any(redial_utils.is_validation(i, fraction=0) for i in ids)


def test_reads_raw_titles():
  assert redial_utils.load_movie_titles(MOVIES) == {
      "111": "Heat  (1995)",
      "444": "Alien (1979)",
      "555": "Tom &amp; Jerry (1992)",
  }


def test_quirks_file_has_four_lines_two_valid():
  with open(QUIRKS, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert len(lines) == 4
  with pytest.raises(json.JSONDecodeError):
    json.loads(lines[2])
  assert "messages" not in json.loads(lines[3])



def test_invalid_utf8_line_is_skipped_with_file_line_and_counted(tmp_path):
  good = json.loads(open(QUIRKS, encoding="utf-8").readline())
  path = tmp_path / "bytes.jsonl"
  path.write_bytes(json.dumps(good).encode() + b"\n"
                   + b'{"messages": "caf\xe9"}\n'
                   + json.dumps(good).encode() + b"\n")
  summary = redial_utils.ParseSummary()
  dialogues = list(redial_utils.read_dialogues(str(path), summary=summary))
  assert len(dialogues) == 2
  assert summary.malformed_lines == 1
  assert summary.malformed_locations == [
      "bytes.jsonl:2: not valid UTF-8 (byte 0xe9 at column 18)"]
  with pytest.raises(ValueError, match=r"bytes\.jsonl:2: not valid UTF-8"):
    list(redial_utils.read_dialogues(str(path), strict=True))
