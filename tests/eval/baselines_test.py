"""Tests for eval/baselines.py on literal examples."""

import json

import numpy as np
import pytest

from eval import baselines
from eval import ranking

MOVIES = ranking.MovieList(
    titles=("heat (1995)", "up (2009)", "alien (1979)", "cars (2006)"),
    mentions=(5, 40, 30, 20), num_rows=4)

EXAMPLES = [
    {"context": "[User] i like @ heat (1995) @ and @ cars (2006) @",
     "response": "then @ up (2009) @ , or @ heat (1995) @ again",
     "seeker_movies": ["heat (1995)", "cars (2006)"],
     "recommender_movies": ["up (2009)"],
     "target_movies": ["up (2009)", "heat (1995)"],
     "context_movies": ["cars (2006)", "heat (1995)"], "turn_index": 1},
    {"context": "[User] hi", "response": "try @ alien (1979) @",
     "seeker_movies": [], "recommender_movies": ["alien (1979)"],
     "target_movies": ["alien (1979)"], "context_movies": [],
     "turn_index": 1},
]


def assert_dict_close(actual, expected):
  for key, value in expected.items():
    assert key in actual, f"missing key {key!r}; got {sorted(actual)}"
    assert actual[key] == pytest.approx(value), (
        f"{key}: got {actual[key]!r}, expected {value!r}")


def test_gold_replies_score_perfectly():
  result = baselines.generation_metrics(EXAMPLES,
                                        baselines.gold_replies(EXAMPLES))
  # Recommendations: up (hit; heat is the seeker's), alien (hit).
  assert_dict_close(result, {
      "rec/e2e_recall": 100.0, "rec/e2e_num_recommendations": 2.0,
      "gen/bleu4": 100.0, "gen/bleu4_titles_masked": 100.0,
      "gen/bleu1_sentence_avg_nltk": 100.0})


def test_repeat_context_scores_by_recency():
  score_fn = baselines.make_repeat_context_score_fn()
  candidates = [ranking.candidate_reply(t) for t in MOVIES.titles]
  # The context "@ heat @ x @ up @ y @ heat @": most recent first.
  scores = score_fn([{"context_movies": ["Heat (1995)", "up (2009)"]},
                     {"context_movies": []}], candidates)
  # The most recent scores highest: heat 2, up 1, the others 0.
  np.testing.assert_array_equal(scores, [[2, 1, 0, 0], [0, 0, 0, 0]])


def test_repeat_context_protocols():
  score_fn = baselines.make_repeat_context_score_fn()
  # Standard: heat is the 2nd most recent of the context -> rank 2; up and
  # alien tie with the rest at 0 -> rank 4 (ties count against).
  protocols = ranking.make_protocols(MOVIES, ks=(1, 2))
  result = ranking.evaluate(score_fn, EXAMPLES, protocols)
  standard = {k: v for k, v in result.items() if k.startswith("rank/")}
  assert_dict_close(standard, {"rank/recall@1": 0.0,
                               "rank/recall@2": 100 / 3,
                               "rank/num_samples": 3.0})
  dedup = {k: v for k, v in result.items() if k.startswith("rank_dedup/")}
  # De-duplicated: heat dropped; heat and cars excluded, so up ties with
  # alien only (rank 2); alien still ranks 4.
  assert_dict_close(dedup, {"rank_dedup/recall@1": 0.0,
                            "rank_dedup/recall@2": 50.0,
                            "rank_dedup/num_samples": 2.0})


def test_popularity_ranking():
  score_fn = baselines.make_popularity_score_fn(MOVIES)
  # Order: up 40, alien 30, cars 20, heat 5 -> up 1, heat 4, alien 2.
  result = ranking.evaluate(score_fn, EXAMPLES,
                            ranking.make_protocols(MOVIES, ks=(1, 2)))
  assert_dict_close(result, {"rank/recall@1": 100 / 3,
                             "rank/recall@2": 200 / 3})
  # With given counts instead of nbMentions: heat first.
  score_fn = baselines.make_popularity_score_fn(
      MOVIES, counts={"Heat (1995)": 9})
  result = ranking.evaluate(score_fn, EXAMPLES,
                            ranking.make_protocols(MOVIES, ks=(1,)))
  assert_dict_close(result, {"rank/recall@1": 100 / 3})


def test_run_all_rows():
  rows = baselines.run_all(EXAMPLES, MOVIES, ks=(1, 2))
  assert sorted(rows) == ["gold", "popular_reply", "popularity",
                          "repeat_context"]
  assert rows["gold"]["gen/bleu4"] == pytest.approx(100.0)
  # As test_repeat_context_protocols and test_popularity_ranking.
  assert_dict_close(rows["repeat_context"], {
      "rank/recall@2": 100 / 3, "rank_dedup/recall@2": 50.0})
  assert_dict_close(rows["popularity"], {"rank/recall@1": 100 / 3})


def test_report_prints_and_writes_the_rows(tmp_path, capsys):
  redial = tmp_path / "redial"
  redial.mkdir()
  (redial / "movies_with_mentions.csv").write_text(
      "movieId,movieName,nbMentions\n1,Heat (1995),5\n2,Up (2009),40\n")
  # One dialogue: the seeker names heat, the recommender suggests up.
  dialogue = {
      "conversationId": "1", "initiatorWorkerId": 0,
      "respondentWorkerId": 1, "movieMentions": {"1": "Heat (1995)",
                                                 "2": "Up (2009)"},
      "initiatorQuestions": {"1": {"suggested": 0, "seen": 1, "liked": 1},
                             "2": {"suggested": 1, "seen": 0, "liked": 2}},
      "respondentQuestions": {},
      "messages": [
          {"messageId": 1, "text": "i like @1", "timeOffset": 0,
           "senderWorkerId": 0},
          {"messageId": 2, "text": "try @2", "timeOffset": 1,
           "senderWorkerId": 1}]}
  (redial / "test_data.jsonl").write_text(json.dumps(dialogue) + "\n")
  output = tmp_path / "rows.json"
  baselines.report(str(redial), output=str(output))
  printed = capsys.readouterr().out
  rows = json.loads(output.read_text())
  # Up is the most popular movie and the label: rank 1 under both.
  assert rows["popularity"]["rank/recall@1"] == 100.0
  assert rows["popularity"]["rank_dedup/recall@1"] == 100.0
  assert "popularity rank/recall@1: 100.0000" in printed


def test_popularity_replies_skip_mentioned_movies():
  replies = baselines.popularity_replies(
      [{"context_movies": ["up (2009)"]}, {"context_movies": []}], MOVIES)
  assert replies == ["have you seen @ alien (1979) @ ?",
                     "have you seen @ up (2009) @ ?"]


def test_mention_counts():
  assert baselines.mention_counts(EXAMPLES) == {
      "up (2009)": 1, "heat (1995)": 1, "alien (1979)": 1}


def test_missing_target_is_reported():
  with pytest.raises(ValueError, match="no text target"):
    baselines.target_of({"inputs": "x"})


def test_popularity_pair_scores_prefer_the_more_popular_movie():
  from eval.probes import probe_lib  # pylint: disable=g-import-not-at-top
  score_fn = baselines.make_popularity_pair_score_fn(
      {"heat (1995)": 9.0, "up (2009)": 1.0})
  np.testing.assert_allclose(
      score_fn(["x", "x", "x"], ["sure, @ Heat (1995) @?", "@ up (2009) @",
                                 "no title"]),
      [np.log(10.0), np.log(2.0), 0.0])
  examples = [
      {"probe": "p", "inputs": "q", "targets": "@ up (2009) @",
       "negative_targets": "@ heat (1995) @"},
      {"probe": "p", "inputs": "q", "targets": "@ heat (1995) @",
       "negative_targets": "@ unknown (2000) @"},
  ]
  # Pair 1: up (1) < heat (9): wrong; pair 2: heat > unknown: right -> 50%.
  metrics = probe_lib.score_probe(score_fn, examples)
  assert metrics["probe/p/accuracy"] == 50.0
