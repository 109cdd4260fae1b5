"""Ranking protocols and baselines on the real ReDial test split.

Needs ../shared/data (the `shared_data` fixture skips otherwise). Every count
and value asserted here is derived a second time from the raw jsonl and csv
with a few independent lines (`_raw_pairs`), not from what our code printed.
"""

import collections
import csv
import functools
import html
import json
import re

import numpy as np
import pytest

from crs_tasks import metrics
from crs_tasks import redial_utils
from eval import baselines
from eval import ranking

KS = (1, 10, 50)


def _norm(title):
  return " ".join(html.unescape(title).split()).lower()


@functools.lru_cache(maxsize=1)
def _load(data_dir):
  redial = f"{data_dir}/redial"
  examples = redial_utils.load_examples(
      f"{redial}/test_data.jsonl",
      movie_titles=redial_utils.load_movie_titles(
          f"{redial}/movies_with_mentions.csv"))
  movies = ranking.load_movie_list(f"{redial}/movies_with_mentions.csv")
  return examples, movies


@functools.lru_cache(maxsize=1)
def _raw_pairs(data_dir):
  """(recommender turn, distinct movie) pairs straight from the raw files.

  Returns:
    One tuple per pair: (title, recency, turn) where recency is the 1-based
    position of the title among the distinct movies mentioned before the
    turn, most recent first (None when not mentioned before) and turn
    identifies the turn; and the number of recommendations of the
    reference replies (for e2e recall). A recommender turn that opens the
    dialogue (empty context) gives no pair (CRSLab, KGSF, UniCRS).
  """
  pairs, recommendations = [], 0
  with open(f"{data_dir}/redial/test_data.jsonl", encoding="utf-8") as f:
    for line in f:
      dialogue = json.loads(line)
      names = dialogue["movieMentions"] or {}
      answers = {**dict(dialogue["respondentQuestions"] or {}),
                 **dict(dialogue["initiatorQuestions"] or {})}
      seeker_titles = {_norm(names[i]) for i, a in answers.items()
                       if i in names and a.get("suggested") == 0}
      turns = []  # [is_seeker, [movie ids]]
      for message in dialogue["messages"]:
        if not message["text"].strip():
          continue
        is_seeker = message["senderWorkerId"] == dialogue[
            "initiatorWorkerId"]
        ids = re.findall(r"@(\d+)", message["text"])
        if turns and turns[-1][0] == is_seeker:
          turns[-1][1].extend(ids)
        else:
          turns.append([is_seeker, ids])
      earlier = []
      for position, (is_seeker, ids) in enumerate(turns):
        titles = list(dict.fromkeys(_norm(names[i]) for i in ids))
        if not is_seeker and position > 0:
          recent = list(dict.fromkeys(reversed(earlier)))
          for title in titles:
            recency = recent.index(title) + 1 if title in recent else None
            pairs.append((title, recency,
                          (dialogue["conversationId"], position)))
        if not is_seeker:
          recommendations += sum(
              t not in seeker_titles and "(" in t for t in titles)
        earlier.extend(_norm(names[i]) for i in ids)  # Repeats kept.
  return pairs, recommendations


def _raw_popularity(data_dir):
  counts = collections.Counter()
  with open(f"{data_dir}/redial/movies_with_mentions.csv",
            encoding="utf-8") as f:
    for row in csv.DictReader(f):
      counts[_norm(row["movieName"])] += int(row["nbMentions"])
  return counts


def assert_dict_close(actual, expected):
  for key, value in expected.items():
    assert key in actual, f"missing key {key!r}; got {sorted(actual)}"
    assert actual[key] == pytest.approx(value), (
        f"{key}: got {actual[key]!r}, expected {value!r}")


def _recalls(prefix, ranks):
  ranks = np.asarray(ranks, np.float64)
  return {f"{prefix}/recall@{k}": 100 * np.mean(ranks <= k) for k in KS}


def test_movie_list(shared_data):
  _, movies = _load(str(shared_data))
  counts = _raw_popularity(str(shared_data))
  assert movies.num_rows == 6924
  assert len(movies.titles) == len(counts)  # Equal titles merged.
  assert sum(movies.mentions) == sum(counts.values())


def test_standard_protocol_has_the_published_samples(shared_data):
  """4,897 samples over 3,617 turns; de-duplicated 4,426 over 3,372.

  Turns with an empty context (the recommender opens the dialogue: 54
  turns, 72 movies) are no samples, as in CRSLab, KGSF and UniCRS.
  """
  data_dir = str(shared_data)
  examples, movies = _load(data_dir)
  pairs, _ = _raw_pairs(data_dir)
  fresh = [p for p in pairs if p[1] is None]
  assert (len(pairs), len({p[2] for p in pairs})) == (4897, 3617)
  assert (len(fresh), len({p[2] for p in fresh})) == (4426, 3372)
  standard = ranking.build_samples(examples, movies, dedup=False)
  assert (standard.num_samples, standard.num_turns) == (4897, 3617)
  assert standard.num_without_context == 72
  dedup = ranking.build_samples(examples, movies, dedup=True)
  assert (dedup.num_samples, dedup.num_turns) == (4426, 3372)


def test_repeat_context_baseline_both_protocols(shared_data):
  data_dir = str(shared_data)
  examples, movies = _load(data_dir)
  pairs, _ = _raw_pairs(data_dir)
  repeated = [p for p in pairs if p[1] is not None]
  score_fn = baselines.make_repeat_context_score_fn()
  # Standard: a repeated label ranks at its recency; the rest tie at 0 with
  # thousands of movies (rank > 50).
  expected = {"rank/num_samples": len(pairs), "rank/num_missing": 0.0}
  expected.update(_recalls(
      "rank", [r if r is not None else np.inf for _, r, _ in pairs]))
  result = ranking.evaluate(score_fn, examples,
                            ranking.make_protocols(movies))
  assert_dict_close(result, expected)
  assert result["rank/recall@1"] > 0
  # De-duplicated: the repeated labels are dropped, the rest score 0.
  assert_dict_close(result, {
      "rank_dedup/num_samples": len(pairs) - len(repeated),
      "rank_dedup/num_dropped": len(repeated),
      "rank_dedup/recall@1": 0.0, "rank_dedup/recall@10": 0.0,
      "rank_dedup/recall@50": 0.0})


def test_popularity_baseline_both_protocols(shared_data):
  data_dir = str(shared_data)
  examples, movies = _load(data_dir)
  pairs, _ = _raw_pairs(data_dir)
  counts = _raw_popularity(data_dir)
  values = np.array(sorted(counts.values()))
  # Rank = movies at least as popular (ties count against the label).
  rank = {t: len(values) - np.searchsorted(values, c) for t, c in
          counts.items()}
  score_fn = baselines.make_popularity_score_fn(movies)
  result = ranking.evaluate(score_fn, examples,
                            ranking.make_protocols(movies))
  assert_dict_close(result, _recalls("rank", [rank[t] for t, _, _ in pairs]))
  assert 0 < result["rank/recall@1"] < result["rank/recall@10"] < result[
      "rank/recall@50"] < 100


def test_gold_and_popular_replies(shared_data):
  data_dir = str(shared_data)
  examples, movies = _load(data_dir)
  _, recommendations = _raw_pairs(data_dir)
  gold = baselines.generation_metrics(examples,
                                      baselines.gold_replies(examples))
  # Every title of a reference reply is labelled seeker or recommender by
  # the dialogue's own questionnaires, so each recommendation is a hit.
  assert_dict_close(gold, {
      "rec/e2e_recall": 100.0,
      "rec/e2e_num_recommendations": recommendations,
      "gen/bleu4": 100.0, "gen/bleu4_titles_masked": 100.0,
      "gen/bleu1_sentence_avg_nltk": 100.0})
  replies = baselines.popularity_replies(examples, movies)
  popular = metrics.e2e_recall(examples, replies)
  # One new title per reply, so one recommendation per reply unless the
  # seeker named that movie.
  assert popular["rec/e2e_num_recommendations"] <= len(examples)
  assert 0 < popular["rec/e2e_recall"] < 10
