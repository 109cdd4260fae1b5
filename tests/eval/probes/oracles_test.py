"""Tests of the probes' oracle rows (eval/probes/oracles.py) on a hand-made
MovieLens fixture."""

import json
import math

import pytest

from crs_tasks import movielens_data
from eval.probes import oracles

# Training sequences (movieIds): 1 with 2 twice, 1 with 3 once, 3 alone.
SEQUENCES = [[1, 2], [1, 2, 3], [3, 4], [3, 4], [3]]
MOVIES = {i: movielens_data.Movie(i, t, t[:1], t[3:7]) for i, t in
          ((1, "A (2000)"), (2, "B (2001)"), (3, "C (2002)"), (4, "D (2003)"))}
# The sequences task's examples: inputs [A] -> target B twice, -> C once.
TASK = [{"movies": ["A (2000)"], "target": "B (2001)"},
        {"movies": ["A (2000)"], "target": "B (2001)"},
        {"movies": ["A (2000)", "D (2003)"], "target": "C (2002)"}]


def _pair(query, pos, neg):
  return {"query_movie": query, "positive_movie": pos, "negative_movie": neg}


@pytest.fixture
def stats():
  return oracles.OracleStats(MOVIES, SEQUENCES, TASK)


def test_scores_by_hand(stats):
  # pop: A 2, B 2, C 4, D 2; co(A, B) = 2, co(A, C) = 1.
  assert stats.score("popularity", "", "c (2002)") == 4.0
  assert stats.score("cooccurrence", "a (2000)", "b (2001)") == 2 / 2
  assert stats.score("cooccurrence", "a (2000)", "c (2002)") == 1 / 2
  assert stats.score("pmi2", "a (2000)", "b (2001)") == pytest.approx(
      math.log(4 / (2 * 2)))
  assert stats.score("pmi2", "a (2000)", "c (2002)") == pytest.approx(
      math.log(1 / (2 * 4)))
  assert stats.score("pmi2", "a (2000)", "d (2003)") == -math.inf
  assert stats.score("task_conditional", "a (2000)", "b (2001)") == 2 / 3
  assert stats.score("task_conditional", "a (2000)", "c (2002)") == 1 / 3
  assert stats.score("task_conditional", "b (2001)", "c (2002)") == 0.0


def test_accuracy_counts_ties_as_half(stats):
  pairs = [_pair("a (2000)", "b (2001)", "c (2002)"),  # co: win; pop: loss
           _pair("a (2000)", "b (2001)", "d (2003)"),  # co: win; pop: tie
           _pair("b (2001)", "d (2003)", "a (2000)")]  # co(B,D)=0 vs 2: loss
  row = oracles.oracle_metrics(stats, pairs, "cooccurrence")
  assert row["accuracy"] == pytest.approx(100 * 2 / 3)
  assert row["ties"] == 0 and row["num_pairs"] == 3
  pop = oracles.oracle_metrics(stats, pairs, "popularity")
  assert pop["ties"] == 2  # B vs D (2 = 2), D vs A (2 = 2).
  assert pop["accuracy"] == pytest.approx(100 * (0 + 2 / 2) / 3)
  assert pop["ci_low"] < pop["accuracy"] < pop["ci_high"]


def test_applicable_and_file(stats, tmp_path):
  rec = [dict(_pair("a (2000)", "b (2001)", "c (2002)"), probe="r",
              pair_id="r/0", inputs="x", targets="y", negative_targets="z",
              tag="")]
  attr = [dict(rec[0], query_movie="")]
  assert oracles.applicable(rec) == oracles.ORACLES
  assert oracles.applicable(attr) == ("popularity",)
  assert oracles.applicable([dict(rec[0], negative_movie="")]) == ()
  for name, rows in (("recommendation", rec), ("attribute", attr)):
    (tmp_path / f"{name}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
  out = oracles.probe_oracles(str(tmp_path), stats)
  assert set(out) == {"recommendation", "attribute"}
  assert set(out["attribute"]) == {"popularity"}
  assert oracles.read_oracles(str(tmp_path)) == json.loads(json.dumps(out))
  assert oracles.read_oracles(str(tmp_path / "none")) == {}
