"""Pure-python parsing of the ReDial release into T5-CR text examples.

ReDial (Li et al. 2018) ships `train_data.jsonl` / `test_data.jsonl`, one
dialogue per line, and `movies_with_mentions.csv`. This module turns each
dialogue into one example per recommender turn, as T5-CR does
(googleinterns/e2e-convrec `data/build_redial.py`, `separate_responses`):

* The seeker is `initiatorWorkerId`; every other sender is the recommender.
* Consecutive messages of one speaker are merged into one turn, joined by a
  space.
* The context is every earlier turn, each written `[User] <text>` (seeker) or
  `[Assistant] <text>` (recommender), joined by single spaces; the target is
  the recommender turn itself, without a tag. A dialogue where the
  recommender speaks first gives an example with an empty context, as in the
  original; the recommender's final turn gives an example too (the original
  flushes it with a dummy seeker message).
* `@<movieId>` becomes `@ Title (Year) @`; the title comes from the
  dialogue's `movieMentions`, else `movies_with_mentions.csv`. A mention
  found in neither is dropped from the text (the model never sees a raw
  `@<movieId>`, which would teach it to write ids), counted in
  `ParseSummary.mentions_unresolved` and warned about with `file:line`
  (`ParseSummary.unresolved_locations`).

Unlike the original, punctuation glued to a mention (`@123.`) is kept, HTML
entities are unescaped (`&quot;` -> `"`) and all whitespace is collapsed (the
original also collapses it, through `str.split`). Casing and the task prefix
are left to the seqio preprocessors (`crs_tasks.preprocessors`).

Bad input policy: a line that is not valid UTF-8 or not valid JSON, or a
dialogue missing a required field, is skipped and counted in
`ParseSummary.malformed_lines`, with
`file:line: reason` in `ParseSummary.malformed_locations` and a warning in the
log; pass `strict=True` to raise `ValueError` naming the file and line instead.

To support another quirk: count it in `ParseSummary` and test it in
`tests/crs_tasks/redial_utils_test.py`.
"""

import collections
import dataclasses
import hashlib
import html
import json
import os
import re
from typing import Any, Iterable, Iterator, Mapping, Optional

from absl import logging

from crs_runtime import errors
from crs_tasks import redial_movies
from crs_tasks import titles as titles_lib

USER_TAG = "[User]"
ASSISTANT_TAG = "[Assistant]"
MENTION_RE = re.compile(r"@(\d+)")
_YEAR_RE = re.compile(r"\(\d{4}\)$")
_MAX_WARNINGS = 20  # Further unresolved mentions are only counted.
_REQUIRED_FIELDS = (
    "conversationId",
    "initiatorWorkerId",
    "messages",
    "movieMentions",
)
# The title lists of each example (`dialogue_to_examples`): the TFDS
# schema, the Tasks' pass-through features and the metric targets alike.
TITLE_FEATURES = (
    "seeker_movies",
    "recommender_movies",
    "target_movies",
    "target_movies_repeated",
    "context_movies",
)
# Every metadata feature of an example besides its text.
METADATA_FEATURES = ("conversation_id", "turn_index") + TITLE_FEATURES

Dialogue = dict[str, Any]
Example = dict[str, Any]


@dataclasses.dataclass
class ParseSummary:
  """Counts of what parsing met, for logs and dataset statistics.

  Attributes:
    dialogues: dialogues parsed.
    examples: examples produced (one per recommender turn).
    examples_empty_context: examples whose context is empty (the recommender
      spoke first).
    malformed_lines: lines skipped (bad JSON or a missing field).
    malformed_locations: `file:line: reason` of each skipped line.
    empty_list_questions: question fields given as `[]` instead of a dict.
    html_entities: messages or titles whose text held HTML entities.
    titles_whitespace_normalized: distinct titles with extra whitespace.
    titles_without_year: distinct titles without a trailing `(Year)`.
    mentions: `@<movieId>` mentions in message text.
    mentions_from_csv: mentions missing from `movieMentions` that
      `movies_with_mentions.csv` resolved.
    mentions_unresolved: mentions found nowhere, dropped from the text.
    unresolved_locations: `file:line: @<movieId>` of each of them.
    location: `file:line` of the dialogue being parsed (set by
      `read_dialogues`; empty for dialogues given directly).
    recommender_first: dialogues where the recommender speaks first.
    merged_messages: messages merged into the previous one of their speaker.
    empty_messages: messages with no text after cleaning (dropped).
  """

  dialogues: int = 0
  examples: int = 0
  examples_empty_context: int = 0
  malformed_lines: int = 0
  malformed_locations: list[str] = dataclasses.field(default_factory=list)
  empty_list_questions: int = 0
  html_entities: int = 0
  titles_whitespace_normalized: int = 0
  titles_without_year: int = 0
  mentions: int = 0
  mentions_from_csv: int = 0
  mentions_unresolved: int = 0
  unresolved_locations: list[str] = dataclasses.field(default_factory=list)
  location: str = ""
  recommender_first: int = 0
  merged_messages: int = 0
  empty_messages: int = 0
  _seen_titles: set[str] = dataclasses.field(
      default_factory=set, repr=False, compare=False
  )

  def counts(self) -> dict[str, int]:
    """The integer counters as a dict (for logs and tests)."""
    return {
        f.name: getattr(self, f.name)
        for f in dataclasses.fields(self)
        if f.type == "int" or f.type is int
    }


def load_movie_titles(path: str) -> dict[str, str]:
  """Reads `movies_with_mentions.csv` (`redial_movies.read_movie_list`).

  Args:
    path: the CSV file.

  Returns:
    `{movieId: raw movieName}` (not normalized).

  Raises:
    errors.UserError: naming the file, line and field of a bad header or
      row (`redial_movies.read_movie_list`).
  """
  return {m.movie_id: m.name for m in redial_movies.read_movie_list(path)}


def read_dialogues(
    path: str,
    *,
    summary: Optional[ParseSummary] = None,
    strict: bool = False,
) -> Iterator[Dialogue]:
  """Yields the dialogues of a ReDial jsonl file, skipping malformed lines.

  Args:
    path: a ReDial `*.jsonl` file.
    summary: counts malformed lines into it when given.
    strict: raise instead of skipping a malformed line.

  Yields:
    One dict per valid line, as in the file.

  Raises:
    ValueError: with `strict=True`, naming the file, line and field.
  """
  summary = summary if summary is not None else ParseSummary()
  name = os.path.basename(path)
  with open(path, "rb") as f:
    for line_number, raw in enumerate(f, start=1):
      if not raw.strip():
        continue
      try:
        try:
          line = raw.decode("utf-8")
        except UnicodeDecodeError as e:  # A ValueError: skipped below.
          raise ValueError(errors.utf8_error(raw, e)) from None
        dialogue = json.loads(line)
        if not isinstance(dialogue, dict):
          raise ValueError(f"expected a JSON object, got {type(dialogue)}")
        missing = [k for k in _REQUIRED_FIELDS if k not in dialogue]
        if missing:
          raise ValueError(f"missing field(s) {missing}")
        if not isinstance(dialogue["messages"], list):
          raise ValueError("field messages is not a list")
      except ValueError as e:  # json.JSONDecodeError is a ValueError.
        location = f"{name}:{line_number}: {e}"
        if strict:
          raise ValueError(f"{path}:{line_number}: {e}") from e
        logging.warning("Skipping malformed ReDial line %s", location)
        summary.malformed_lines += 1
        summary.malformed_locations.append(location)
        continue
      summary.location = f"{name}:{line_number}"
      yield dialogue


def _questions(
    dialogue: Dialogue, field: str, summary: ParseSummary
) -> dict[str, Any]:
  value = dialogue.get(field) or {}
  if isinstance(dialogue.get(field), list):
    summary.empty_list_questions += 1
    value = {}
  return value


class _Titles:
  """Resolves movieIds to normalized titles for one dialogue."""

  def __init__(
      self,
      mentions: Mapping[str, Any],
      csv_titles: Mapping[str, str],
      summary: ParseSummary,
  ):
    self._mentions = mentions if isinstance(mentions, dict) else {}
    self._csv = csv_titles
    self._summary = summary

  def _normalize(self, raw: str) -> str:
    title = titles_lib.clean_text(raw)
    summary = self._summary
    if raw not in summary._seen_titles:  # pylint: disable=protected-access
      summary._seen_titles.add(raw)  # pylint: disable=protected-access
      if html.unescape(raw) != raw:
        summary.html_entities += 1
      if " ".join(raw.split()) != raw:
        summary.titles_whitespace_normalized += 1
      if title and not _YEAR_RE.search(title):
        summary.titles_without_year += 1
    return title

  def get(self, movie_id: str, *, count: bool = False) -> Optional[str]:
    """The title of `movie_id`, or None if neither source has it."""
    raw = self._mentions.get(movie_id)
    if raw and raw.strip():
      return self._normalize(raw)
    raw = self._csv.get(movie_id)
    if raw and raw.strip():
      if count:
        self._summary.mentions_from_csv += 1
      return self._normalize(raw)
    if count:
      self._summary.mentions_unresolved += 1
    return None


def _replace_mentions(
    text: str, titles: _Titles, summary: ParseSummary
) -> tuple[str, list[str]]:
  """Writes `@123` as `@ Title @`; returns the text and the titles in it."""
  found = []

  def replace(match: re.Match) -> str:
    summary.mentions += 1
    title = titles.get(match.group(1), count=True)
    if title is None:
      location = f"{summary.location or '<dialogue>'}: {match.group(0)}"
      summary.unresolved_locations.append(location)
      if len(summary.unresolved_locations) <= _MAX_WARNINGS:
        logging.warning(
            "Dropping %s: in neither movieMentions nor the movie CSV",
            location)
      return " "
    found.append(title)
    start = match.start()
    space = " " if start > 0 and not text[start - 1].isspace() else ""
    return f"{space}@ {title} @"

  text = MENTION_RE.sub(replace, text)
  return " ".join(text.split()), found


def _dedupe(items: Iterable[str]) -> list[str]:
  return list(dict.fromkeys(items))


def dialogue_to_examples(
    dialogue: Dialogue,
    *,
    movie_titles: Optional[Mapping[str, str]] = None,
    summary: Optional[ParseSummary] = None,
) -> list[Example]:
  """Turns one ReDial dialogue into one example per recommender turn.

  For the dialogue (seeker 1, recommender 2, movieMentions
  `{"5": "Heat  (1995)"}`):
    1: "hi"  2: "try @5"  2: "it is great"  1: "thanks"
  the single example is
    {"context": "[User] hi", "response": "try @ Heat (1995) @ it is great",
     "conversation_id": ..., "turn_index": 1, "target_movies": ["Heat
     (1995)"], "target_movies_repeated": [], "context_movies": [],
     "seeker_movies": [...], "recommender_movies": [...]}.

  Args:
    dialogue: one parsed line of a ReDial jsonl file.
    movie_titles: `{movieId: title}` fallback (movies_with_mentions.csv).
    summary: counts the quirks met into it when given.

  Returns:
    Examples: strings `context`, `response`, `conversation_id`; int
    `turn_index` (the target turn's index among the merged turns); title
    lists `seeker_movies`, `recommender_movies` (questionnaires: `suggested`
    0 = seeker, 1 or unlabeled = recommender; the initiator wins),
    `target_movies` (in the target turn, in order), `target_movies_repeated`
    (those mentioned in an earlier turn) and `context_movies` (earlier
    mentions, most recent first, no duplicates).
  """
  summary = summary if summary is not None else ParseSummary()
  movie_titles = movie_titles or {}
  summary.dialogues += 1
  seeker = dialogue["initiatorWorkerId"]
  titles = _Titles(dialogue.get("movieMentions"), movie_titles, summary)

  # Questionnaires: initiator answers override respondent ones.
  answers = {
      **_questions(dialogue, "respondentQuestions", summary),
      **_questions(dialogue, "initiatorQuestions", summary),
  }
  seeker_movies, recommender_movies = [], []
  mentions = dialogue.get("movieMentions")
  for movie_id in mentions if isinstance(mentions, dict) else {}:
    title = titles.get(movie_id)
    if not title:
      continue
    answer = answers.get(movie_id)
    if isinstance(answer, dict) and answer.get("suggested") == 0:
      seeker_movies.append(title)
    else:
      recommender_movies.append(title)
  seeker_movies = _dedupe(seeker_movies)
  recommender_movies = _dedupe(recommender_movies)

  # Merge consecutive messages of one speaker into turns.
  turns = []  # [(is_seeker, text, titles)]
  for message in dialogue["messages"]:
    text = titles_lib.clean_text(str(message.get("text") or ""))
    if html.unescape(str(message.get("text") or "")) != message.get("text"):
      summary.html_entities += 1
    text, found = _replace_mentions(text, titles, summary)
    if not text:
      summary.empty_messages += 1
      continue
    is_seeker = message.get("senderWorkerId") == seeker
    if turns and turns[-1][0] == is_seeker:
      summary.merged_messages += 1
      turns[-1][1].append(text)
      turns[-1][2].extend(found)
    else:
      turns.append((is_seeker, [text], list(found)))
  if turns and not turns[0][0]:
    summary.recommender_first += 1

  examples = []
  history, earlier = [], []  # earlier: titles in order of mention.
  for index, (is_seeker, texts, found) in enumerate(turns):
    text = " ".join(texts)
    if not is_seeker:
      target = _dedupe(found)
      seen = set(earlier)
      examples.append({
          "conversation_id": str(dialogue["conversationId"]),
          "turn_index": index,
          "context": " ".join(history),
          "response": text,
          "seeker_movies": seeker_movies,
          "recommender_movies": recommender_movies,
          "target_movies": target,
          "target_movies_repeated": [t for t in target if t in seen],
          "context_movies": _dedupe(reversed(earlier)),
      })
      if not history:
        summary.examples_empty_context += 1
    history.append(f"{USER_TAG if is_seeker else ASSISTANT_TAG} {text}")
    earlier.extend(found)
  summary.examples += len(examples)
  return examples


def load_examples(
    path: str,
    *,
    movie_titles: Optional[Mapping[str, str]] = None,
    summary: Optional[ParseSummary] = None,
    strict: bool = False,
) -> list[Example]:
  """All examples of one ReDial jsonl file (see `dialogue_to_examples`).

  Args:
    path: a ReDial `*.jsonl` file.
    movie_titles: `{movieId: title}` fallback (movies_with_mentions.csv).
    summary: counts quirks and malformed lines into it when given.
    strict: raise on a malformed line instead of skipping it.

  Returns:
    The examples, in file order.
  """
  summary = summary if summary is not None else ParseSummary()
  examples = []
  for dialogue in read_dialogues(path, summary=summary, strict=strict):
    examples.extend(
        dialogue_to_examples(
            dialogue, movie_titles=movie_titles, summary=summary
        )
    )
  return examples


def load_dialogues(
    path: str, *, summary: Optional[ParseSummary] = None, strict: bool = False
) -> list[Dialogue]:
  """All valid dialogues of a ReDial jsonl file (see `read_dialogues`).

  Args:
    path: a ReDial `*.jsonl` file.
    summary: counts malformed lines into it when given.
    strict: raise on a malformed line instead of skipping it.

  Returns:
    The parsed dialogues, in file order.
  """
  return list(read_dialogues(path, summary=summary, strict=strict))


def is_validation(
    conversation_id: str, *, seed: int = 42, fraction: float = 0.1
) -> bool:
  """Deterministic, seeded train/validation assignment of one dialogue.

  Args:
    conversation_id: the dialogue's `conversationId`.
    seed: changes the assignment.
    fraction: expected share of validation dialogues.

  Returns:
    True when md5(f"{seed}:{conversation_id}") falls in the first `fraction`
    of the hash space.
  """
  digest = hashlib.md5(f"{seed}:{conversation_id}".encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") < fraction * 2**64


def split_counts(examples: Iterable[Example]) -> dict[str, int]:
  """Statistics of a list of examples (for docs and tests).

  Args:
    examples: output of `dialogue_to_examples` / `load_examples`.

  Returns:
    `examples`, `dialogues`, `with_target_movies` (examples whose target
    mentions a movie) and `with_repeated_movies`.
  """
  counts = collections.Counter()
  dialogues = set()
  for example in examples:
    counts["examples"] += 1
    dialogues.add(example["conversation_id"])
    counts["with_target_movies"] += bool(example["target_movies"])
    counts["with_repeated_movies"] += bool(example["target_movies_repeated"])
  counts["dialogues"] = len(dialogues)
  return dict(counts)
