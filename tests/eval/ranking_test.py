"""Tests for eval/ranking.py with fake scorers whose rankings are obvious."""

import numpy as np
import pytest

from eval import ranking

MOVIES = ranking.MovieList(
    titles=("heat (1995)", "up (2009)", "alien (1979)", "cars (2006)",
            "ronin (1998)"),
    mentions=(50, 40, 30, 20, 10), num_rows=5)

EXAMPLES = [
    # Two labels; "heat" was mentioned before.
    {"inputs_pretokenized": "ctx0 [User] i loved @ heat (1995) @",
     "target_movies": ["heat (1995)", "ronin (1998)"],
     "context_movies": ["heat (1995)"], "turn_index": 1},
    # No movie in the reply: no sample.
    {"inputs_pretokenized": "ctx1", "target_movies": [],
     "context_movies": [], "turn_index": 3},
    # A label outside the movie list: a sample, counted as a miss.
    {"inputs_pretokenized": "ctx2",
     "target_movies": [b"Alien (1979)", b"unknown (2020)"],
     "context_movies": [b"up (2009)"], "turn_index": np.int32(5)},
    # The recommender opens the dialogue: empty context, no sample (CRSLab
    # `len(context_tokens) > 0`, KGSF, UniCRS).
    {"inputs_pretokenized": "redial conversation:",
     "target_movies": ["cars (2006)"], "context_movies": [],
     "turn_index": 0},
]


def assert_dict_close(actual, expected):
  for key, value in expected.items():
    assert key in actual, f"missing key {key!r}; got {sorted(actual)}"
    assert actual[key] == pytest.approx(value), (
        f"{key}: got {actual[key]!r}, expected {value!r}")


def fixed_order_score_fn(order):
  """Scores candidates so that `order` (titles, best first) is the ranking."""
  def score(examples, candidates):
    value = {ranking.candidate_reply(t): len(order) - i
             for i, t in enumerate(order)}
    row = np.array([value.get(c, 0) for c in candidates], np.float32)
    return np.tile(row, (len(examples), 1))
  return score


def test_candidate_reply():
  assert ranking.candidate_reply("heat (1995)") == "@ heat (1995) @"


def _protocols(ks):
  return ranking.make_protocols(MOVIES, ks=ks)


def test_standard_protocol_counts_and_recall():
  score_fn = fixed_order_score_fn(
      ["ronin (1998)", "alien (1979)", "heat (1995)", "up (2009)",
       "cars (2006)"])
  # Samples: heat (rank 3), ronin (1), alien (2), unknown (miss).
  result = ranking.evaluate(score_fn, EXAMPLES,
                            {"rank": _protocols((1, 2, 3))["rank"]})
  assert_dict_close(result, {
      "rank/recall@1": 25.0, "rank/recall@2": 50.0, "rank/recall@3": 75.0,
      "rank/num_samples": 4.0, "rank/num_turns": 2.0,
      "rank/num_missing": 1.0})


def test_opening_turns_are_no_samples():
  samples = ranking.build_samples(EXAMPLES, MOVIES, dedup=False)
  assert samples.num_without_context == 1  # cars, in the opening turn.
  # The scored turns point at their examples (rows 0 and 2).
  assert samples.rows == (0, 2)
  assert ranking.has_context({"turn_index": np.array([2])})
  assert not ranking.has_context({"turn_index": 0})
  with pytest.raises(ValueError, match="turn_index"):
    ranking.has_context({"inputs": "x"})


def test_dedup_protocol_drops_labels_and_excludes_candidates():
  score_fn = fixed_order_score_fn(
      ["up (2009)", "heat (1995)", "alien (1979)", "ronin (1998)",
       "cars (2006)"])
  # Example 0: heat dropped; ranking without heat: up, alien, ronin -> 3.
  # Example 2: up excluded; alien ranks 2 after heat; unknown missing.
  result = ranking.evaluate(score_fn, EXAMPLES,
                            {"d": _protocols((1, 2, 3))["rank_dedup"]})
  assert_dict_close(result, {
      "rank_dedup/recall@1": 0.0, "rank_dedup/recall@2": 100 / 3,
      "rank_dedup/recall@3": 200 / 3, "rank_dedup/num_samples": 3.0,
      "rank_dedup/num_dropped": 1.0, "rank_dedup/num_missing": 1.0})


def test_ties_count_against_the_label():
  constant = lambda b, c: np.zeros((len(b), len(c)))
  result = ranking.evaluate(constant, EXAMPLES[:1], _protocols((1, 4, 5)))
  assert_dict_close(result, {"rank/recall@1": 0.0, "rank/recall@4": 0.0,
                             "rank/recall@5": 100.0})


def test_label_ranks():
  scores = np.array([[0.1, 0.9, 0.5, 0.5], [3.0, 2.0, 1.0, 0.0]])
  assert ranking.label_ranks(scores, [[2, 1], [3]], [[], [0, 1]]) == [3, 1, 2]
  with pytest.raises(ValueError, match="NaN"):
    ranking.label_ranks(np.array([[np.nan, 1.0]]), [[0]], [[]])


def test_measure_is_a_function_of_samples_and_scores():
  """Hand-made matrix: row 1 serves turn 0, row 0 turn 2 (rows point into
  the matrix; the same row may serve several turns)."""
  protocol = ranking.Protocol(MOVIES, ks=(1, 2))
  samples = ranking.build_samples(EXAMPLES, MOVIES, dedup=False)
  samples = samples.with_rows({0: 1, 2: 0})
  scores = np.array([[0, 0, 5, 0, 0],    # alien first: turn 2's label.
                     [1, 0, 0, 0, 2]])   # ronin, then heat: turn 0's.
  result = protocol.measure(samples, scores)
  # heat rank 2, ronin 1, alien 1, unknown missing.
  assert_dict_close(result, {"rank/recall@1": 50.0, "rank/recall@2": 75.0,
                             "rank/num_turns": 2.0, "rank/num_samples": 4.0})
  # The same inputs, the same result; the inputs are not changed.
  assert protocol.measure(samples, scores) == result
  assert samples.rows == (1, 0)
  with pytest.raises(ValueError, match="one column per movie"):
    protocol.measure(samples, scores[:, :2])


def test_ranks_by_row_keeps_each_turns_labels():
  """`label_ranks` come turn by turn; `ranks_by_row` splits them back."""
  protocol = ranking.Protocol(MOVIES, ks=(1, 2))
  samples = ranking.RankingSamples(rows=(4, 9), labels=((0, 2), (1,)),
                                   excluded=((), ()))
  scores = np.array([[3.0, 2.0, 1.0, 0.0, 0.0]])
  ranks = protocol.label_ranks(samples.with_rows({4: 0, 9: 0}), scores)
  assert ranks == [1, 3, 2]
  assert protocol.ranks_by_row(samples, ranks) == {
      4: {MOVIES.titles[0]: 1, MOVIES.titles[2]: 3},
      9: {MOVIES.titles[1]: 2}}
  assert protocol.measure_ranks(samples, ranks)["rank/recall@2"] == (
      pytest.approx(200 / 3))


def test_score_fn_is_called_once_on_the_distinct_ranked_turns():
  calls = []

  def score(examples, candidates):
    calls.append(([ex["inputs_pretokenized"] for ex in examples],
                  len(candidates)))
    return np.zeros((len(examples), len(candidates)))

  # Both protocols, and a repeated turn (same key): one call, two rows.
  examples = EXAMPLES + [EXAMPLES[0]]
  ranking.evaluate(score, examples, _protocols((1,)),
                   keys=["a", "b", "c", "d", "a"])
  assert calls == [(["ctx0 [User] i loved @ heat (1995) @", "ctx2"], 5)]


def test_distinct_rows():
  assert ranking.distinct_rows(["a", "b", "a"]) == ([0, 1],
                                                    {0: 0, 1: 1, 2: 0})
  assert ranking.distinct_rows([]) == ([], {})


def test_bad_score_shape_is_reported():
  bad = lambda contexts, candidates: np.zeros((len(contexts), 2))
  with pytest.raises(ValueError, match=r"shape \(1, 2\), expected \(1, 5\)"):
    ranking.evaluate(bad, EXAMPLES[:1], _protocols((1,)))


def test_protocols_must_share_one_movie_list():
  other = ranking.MovieList(("heat (1995)",), (1,), 1)
  with pytest.raises(ValueError, match="one movie list"):
    ranking.evaluate(lambda e, c: np.zeros((len(e), len(c))), EXAMPLES,
                     {"a": ranking.Protocol(MOVIES),
                      "b": ranking.Protocol(other)})


def test_make_protocols_names():
  protocols = ranking.make_protocols(MOVIES)
  assert sorted(protocols) == ["rank", "rank_dedup"]
  score_fn = fixed_order_score_fn(["ronin (1998)"])
  assert ranking.evaluate(score_fn, EXAMPLES[:1], protocols)[
      "rank/recall@1"] == 50.0


def test_load_movie_list_normalises_and_merges(tmp_path):
  path = tmp_path / "movies.csv"
  path.write_text(
      "movieId,movieName,nbMentions\n"
      "1,Heat  (1995),3\n"
      "2,Up (2009),2\n"
      "3,heat (1995),4\n"
      "4,Tom &amp; Jerry (1992),1\n", encoding="utf-8")
  movies = ranking.load_movie_list(str(path))
  assert movies.titles == ("heat (1995)", "up (2009)",
                           "tom & jerry (1992)")
  assert movies.mentions == (7, 2, 1)
  assert movies.num_rows == 4
  assert movies.index["up (2009)"] == 1


def test_num_samples_property():
  samples = ranking.build_samples(EXAMPLES, MOVIES, dedup=False)
  assert samples.num_samples == 4
  assert samples.labels == ((0, 4), (2,))
  assert samples.num_missing == 1
