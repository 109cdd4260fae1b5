"""The `movielens review` examples: a movie and review sentences -> the next.

`build_review_examples` reads a reviews CSV (`REVIEWS_CSV_FORMAT`), keeps at
most 5 reviews per movie and makes one example per sentence (the preceding
sentences as context), split 80/20 by movie title.
"""

import collections
import re
from typing import Optional, Sequence

from crs_tasks import movielens_data
from crs_tasks import titles

_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+")
REVIEWS_CSV_FORMAT = """\
Reviews input format (one review per row):
  * UTF-8 CSV (RFC 4180 quoting, `csv` module dialect "excel") with a header
    row naming at least the columns `title` and `review`; other columns are
    ignored.
  * `title`: the movie as "Title (Year)" (ReDial form, e.g. "The Matrix
    (1999)"); MovieLens forms such as "Matrix, The (1999)" are accepted and
    normalized with `normalize_ml_title`.
  * `review`: the review text in plain English; sentences end in . ! or ?
    followed by whitespace. Newlines inside a quoted field are allowed.
  * Rows with an empty title or review are skipped and counted; a missing
    column is an error naming the file.
"""


def split_sentences(text: str) -> list[str]:
  """Splits text after `.`, `!` or `?` (and closing quotes) plus whitespace.

  Args:
    text: e.g. `'Great film. I loved it! Would I watch again? Yes.'`.

  Returns:
    `["Great film.", "I loved it!", "Would I watch again?", "Yes."]`.
  """
  text = titles.clean_text(text)
  return [s.strip() for s in _SENTENCE_END_RE.split(text) if s.strip()]


def load_reviews(
    path: str, *, stats: Optional[collections.Counter] = None
) -> list[tuple[str, str]]:
  """Reads a reviews CSV (see `REVIEWS_CSV_FORMAT`).

  Args:
    path: the CSV file.
    stats: optional Counter; empty rows are counted in
      `stats["reviews_skipped_empty"]`.

  Returns:
    `(title, review)` pairs in file order, titles in ReDial form.
  """
  stats = stats if stats is not None else collections.Counter()
  out = []
  for _, row in movielens_data.read_csv(path, ("title", "review")):
    title = titles.normalize_ml_title(row["title"] or "")
    review = titles.clean_text(row["review"] or "")
    if not title or not review:
      stats["reviews_skipped_empty"] += 1
      continue
    out.append((title, review))
  return out


def review_examples(
    reviews: Sequence[tuple[str, str]],
    *,
    max_reviews_per_movie: int = 5,
    max_context_sentences: Optional[int] = None,
) -> list[dict]:
  """Movie + preceding review sentences -> the next sentence.

  Args:
    reviews: `(title, review)` pairs; per movie, the first
      `max_reviews_per_movie` in order are used.
    max_context_sentences: keep only this many preceding sentences (None:
      all of them).

  Returns:
    One dict per sentence: `{"title", "context" (preceding sentences joined
    by a space, "" for the first), "target", "review_index",
    "sentence_index"}`. E.g. `("Up (2009)", "Sad. Then happy.")` gives
    `{"title": "Up (2009)", "context": "", "target": "Sad.", ...}` and
    `{"title": "Up (2009)", "context": "Sad.", "target": "Then happy.",
    ...}`.
  """
  per_movie = collections.Counter()
  out = []
  for title, review in reviews:
    if per_movie[title] >= max_reviews_per_movie:
      continue
    review_index = per_movie[title]
    per_movie[title] += 1
    sentences = split_sentences(review)
    for i, sentence in enumerate(sentences):
      start = 0 if max_context_sentences is None else max(
          0, i - max_context_sentences
      )
      out.append({
          "title": title,
          "context": " ".join(sentences[start:i]),
          "target": sentence,
          "review_index": review_index,
          "sentence_index": i,
      })
  return out


def build_review_examples(
    path: str,
    *,
    max_reviews_per_movie: int = 5,
    max_context_sentences: Optional[int] = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    stats: Optional[collections.Counter] = None,
) -> dict[str, list[dict]]:
  """Builds the `movielens review` examples, split 80/20 by movie title.

  Args:
    path: reviews CSV (`REVIEWS_CSV_FORMAT`).
    max_reviews_per_movie: see `review_examples`.
    max_context_sentences: see `review_examples`.
    test_fraction: share of movies in "validation".
    seed: split seed.
    stats: optional Counter to add counts to.

  Returns:
    {"train": [...], "validation": [...]} of `review_examples` dicts.
  """
  examples = review_examples(
      load_reviews(path, stats=stats),
      max_reviews_per_movie=max_reviews_per_movie,
      max_context_sentences=max_context_sentences,
  )
  _, test_titles = movielens_data.split_keys(
      {ex["title"] for ex in examples}, test_fraction=test_fraction, seed=seed
  )
  return {
      "train": [ex for ex in examples if ex["title"] not in test_titles],
      "validation": [ex for ex in examples if ex["title"] in test_titles],
  }
