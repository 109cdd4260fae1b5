r"""Sanity baselines for ReDial, scored by the same code as the models.

The README's baseline rows come from this command (the ReDial files of
../shared/data/README; `--output` also writes them as JSON):

  python -m eval.baselines --redial_dir=../shared/data/redial \
      [--split_file=test_data.jsonl] [--output=/tmp/baselines.json]

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
import json
import os
from typing import Any, Mapping, Optional, Sequence

from absl import app
from absl import flags

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow loads (importing crs_tasks registers the Tasks), so its
# start-up logs reach the command's log file (a no-op unless this module is
# the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

import numpy as np

from crs_tasks import metrics as metrics_lib
from crs_tasks import redial_utils
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
            movies: ranking.MovieList,
            ks: Sequence[int] = ranking.DEFAULT_KS,
           ) -> dict[str, dict[str, float]]:
  """Metrics of `gold` and `popular_reply` replies, and both protocols of
  the `repeat_context` and `popularity` rankings, by baseline name.
  """
  protocols = ranking.make_protocols(movies, ks=ks)
  return {
      "gold": generation_metrics(examples, gold_replies(examples)),
      "popular_reply": generation_metrics(
          examples, popularity_replies(examples, movies)),
      "repeat_context": ranking.evaluate(
          make_repeat_context_score_fn(), examples, protocols),
      "popularity": ranking.evaluate(
          make_popularity_score_fn(movies), examples, protocols),
  }


def define_flags() -> None:
  """The command's flags (only under `python -m eval.baselines`: other
  commands import this module as a library)."""
  flags.DEFINE_string(
      "redial_dir", None,
      "ReDial's files: <dir>/<split_file> and <dir>/movies_with_mentions.csv "
      "(e.g. ../shared/data/redial).")
  flags.DEFINE_string("split_file", "test_data.jsonl",
                      "The dialogues, in --redial_dir.")
  flags.DEFINE_string("output", None, "Also write the rows to this JSON file.")


def report(redial_dir: str, split_file: str = "test_data.jsonl",
           output: Optional[str] = None) -> dict[str, dict[str, float]]:
  """`run_all` on ReDial's files; prints the rows, writes them to `output`.

  Args:
    redial_dir: holds `split_file` and `movies_with_mentions.csv`.
    split_file: the dialogues (`test_data.jsonl`).
    output: a JSON file for the rows, or None.

  Returns:
    The rows, by baseline name.
  """
  movie_csv = os.path.join(redial_dir, "movies_with_mentions.csv")
  examples = redial_utils.load_examples(
      os.path.join(redial_dir, split_file),
      movie_titles=redial_utils.load_movie_titles(movie_csv))
  rows = run_all(examples, ranking.load_movie_list(movie_csv))
  for name, row in rows.items():
    for metric in sorted(row):
      print(f"{name} {metric}: {row[metric]:.4f}")
  if output:
    with open(output, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=2, sort_keys=True)
    print(f"\nOutputs: {output}", flush=True)
  return rows


def main(argv: Sequence[str]) -> None:
  """`python -m eval.baselines`: `report` from the flags."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS.redial_dir:
    raise app.UsageError("pass --redial_dir (e.g. ../shared/data/redial)")
  report(flags.FLAGS.redial_dir, flags.FLAGS.split_file, flags.FLAGS.output)


if __name__ == "__main__":
  define_flags()
  cli.run(main, name="baselines")
