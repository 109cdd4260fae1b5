"""Sanity baselines for ReDial, scored by the same code as the models.

* Gold replies: BLEU 100; end-to-end recall 100 because every title of a
  reference reply is labelled seeker (not a recommendation) or recommender
  (a hit) by the dialogue's own questionnaires; only titles unknown to
  `movieMentions` could lower it.
* Repeat the context (most recent first): non-zero under the standard
  ranking protocol, exactly 0 under the de-duplicated one.
* Popularity (`nbMentions`, counted over all of ReDial, test included, or
  given counts) as a ranking and as a reply naming the top unseen movie.
* Popularity on the probes (`make_popularity_pair_score_fn`): a "model"
  that prefers the reply naming the more popular movie. The probes' negatives
  are popular movies, so this scores below 50%: a model that has learned
  only popularity drifts below chance.
"""

import functools
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from crs_tasks import metrics as metrics_lib
from eval import ranking

Example = Mapping[str, Any]

POPULAR_REPLY_TEMPLATE = "have you seen @ {title} @ ?"


def target_of(example: Example) -> str:
  """The reference reply text of a ReDial example (a Task example's
  `targets_pretokenized`, or `response` of `redial_utils` examples)."""
  for key in ("targets_pretokenized", "targets", "response"):
    value = example.get(key)
    if isinstance(value, (str, bytes)):
      return metrics_lib.to_text(value)
  raise ValueError("example has no text target (string 'targets_pretokenized'"
                   f" or 'targets' or 'response'); keys: {sorted(example)}")


def generation_metrics(examples: Sequence[Example],
                       predictions: Sequence[str]) -> dict[str, float]:
  """All `rec/` and `gen/` metrics of one reply per example."""
  targets = [target_of(ex) for ex in examples]
  out = metrics_lib.e2e_recall(examples, predictions)
  out.update(metrics_lib.bleu(targets, predictions))
  out.update(metrics_lib.bleu_titles_masked(targets, predictions))
  out.update(metrics_lib.sentence_bleu_nltk(targets, predictions))
  out.update(metrics_lib.distinct(targets, predictions))
  return out


def gold_replies(examples: Sequence[Example]) -> list[str]:
  """The reference replies themselves, as predictions."""
  return [target_of(ex) for ex in examples]


def _reply_title(reply: str) -> str:
  """Matching key of the movie in a candidate reply `@ Title (Year) @`."""
  titles = metrics_lib.extract_titles(reply)
  return metrics_lib.normalize_title(titles[0] if titles else reply)


@functools.lru_cache(maxsize=4)
def _candidate_keys(candidates: tuple[str, ...]) -> dict[str, int]:
  """Matching key -> column, for a candidate reply list (cached)."""
  return {_reply_title(c): j for j, c in enumerate(candidates)}


def make_repeat_context_score_fn() -> ranking.CandidateScoreFn:
  """Context movies score by recency (the most recently mentioned highest,
  from `context_movies`, most recent first); others 0."""

  def score(examples, candidates):
    columns = _candidate_keys(tuple(candidates))
    out = np.zeros((len(examples), len(candidates)), np.float32)
    for i, example in enumerate(examples):
      recent = ranking.titles_of(example, "context_movies")
      for k, title in enumerate(recent):
        key = metrics_lib.normalize_title(title)
        if key in columns:
          out[i, columns[key]] = float(len(recent) - k)
    return out

  return score


def _counts(movies: ranking.MovieList,
            counts: Optional[Mapping[str, float]]) -> dict[str, float]:
  if counts is None:
    return {metrics_lib.normalize_title(t): float(m)
            for t, m in zip(movies.titles, movies.mentions)}
  return {metrics_lib.normalize_title(t): float(c) for t, c in counts.items()}


def make_popularity_score_fn(
    movies: ranking.MovieList,
    counts: Optional[Mapping[str, float]] = None,
) -> ranking.CandidateScoreFn:
  """Scores candidates by `counts` (title -> count; default nbMentions)."""
  popularity = _counts(movies, counts)

  def score(examples, candidates):
    row = np.zeros(len(candidates), np.float32)
    for key, j in _candidate_keys(tuple(candidates)).items():
      row[j] = popularity.get(key, 0.0)
    return np.tile(row, (len(examples), 1))

  return score


def make_popularity_pair_score_fn(
    popularity: Mapping[str, float]) -> Any:
  """Probe `score_fn(inputs, targets) -> [N]`: log(1 + popularity).

  The score of a reply is that of the last `@ title @` in it (the probes'
  replies name one movie); a title without a count scores 0.

  Args:
    popularity: lower-cased `title (year)` -> count (e.g. MovieLens users
      who rated it >= 4).
  """
  def score(inputs: Sequence[str], targets: Sequence[str]) -> np.ndarray:
    del inputs
    out = []
    for target in targets:
      titles = metrics_lib.extract_titles(target)
      count = popularity.get(titles[-1].lower(), 0.0) if titles else 0.0
      out.append(np.log1p(count))
    return np.asarray(out, np.float64)
  return score


def mention_counts(examples: Sequence[Example]) -> dict[str, int]:
  """Normalised title -> times it is in `target_movies` (e.g. train)."""
  counts = {}
  for ex in examples:
    for title in ranking.titles_of(ex, "target_movies"):
      key = metrics_lib.normalize_title(title)
      counts[key] = counts.get(key, 0) + 1
  return counts


def popularity_replies(
    examples: Sequence[Example],
    movies: ranking.MovieList,
    counts: Optional[Mapping[str, float]] = None,
    template: str = POPULAR_REPLY_TEMPLATE,
) -> list[str]:
  """Per example, `template` naming the most popular movie not in
  `context_movies` (`counts`, default nbMentions).
  """
  popularity = _counts(movies, counts)
  order = sorted(movies.titles,
                 key=lambda t: -popularity.get(
                     metrics_lib.normalize_title(t), 0.0))
  replies = []
  for ex in examples:
    seen = {metrics_lib.normalize_title(t)
            for t in ranking.titles_of(ex, "context_movies")}
    title = next(t for t in order
                 if metrics_lib.normalize_title(t) not in seen)
    replies.append(template.format(title=title))
  return replies


def run_all(examples: Sequence[Example],
            movies: ranking.MovieList) -> dict[str, dict[str, float]]:
  """Metrics of `gold` and `popular_reply` replies, and both protocols of
  the `repeat_context` and `popularity` rankings, by baseline name.
  """
  protocols = ranking.make_protocols(movies, batch_size=256)
  out = {
      "gold": generation_metrics(examples, gold_replies(examples)),
      "popular_reply": generation_metrics(
          examples, popularity_replies(examples, movies)),
  }
  for name, score_fn in (("repeat_context", make_repeat_context_score_fn()),
                         ("popularity", make_popularity_score_fn(movies))):
    out[name] = {}
    for protocol in protocols.values():
      out[name].update(protocol(score_fn, examples))
  return out
