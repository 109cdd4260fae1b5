"""Tests for eval/metrics.py: ranked-list recall, intervals, McNemar."""

import math

import pytest

from eval import metrics


def assert_dict_close(actual, expected, places=6):
  """Every expected key is present and close; the message names the key."""
  for key, value in expected.items():
    assert key in actual, f"missing key {key!r}; got {sorted(actual)}"
    assert actual[key] == pytest.approx(value, abs=10**-places), (
        f"{key}: got {actual[key]!r}, expected {value!r}")


# ================================ rank/ =====================================


def test_ranking_recall_style_guide_example():
  assert_dict_close(
      metrics.ranking_recall([["Heat (1995)"], ["Alien (1979)"]],
                             ["Heat (1995)", "Up (2009)"]),
      {"rank/recall@1": 50.0, "rank/num_samples": 2.0})


def test_ranking_recall_one_sample_per_gold_title():
  targets = [["heat (1995)", "up (2009)"], ["alien (1979)"]]
  predictions = [["up (2009)", "cars (2006)", "heat (1995)"],
                 ["cars (2006)", "alien (1979)"]]
  # Ranks: heat 3, up 1, alien 2.
  assert_dict_close(
      metrics.ranking_recall(targets, predictions, ks=(1, 2, 3),
                             prefix="rank_dedup"),
      {"rank_dedup/recall@1": 100 / 3, "rank_dedup/recall@2": 200 / 3,
       "rank_dedup/recall@3": 100.0, "rank_dedup/num_samples": 3.0})


Z95 = 1.959963984540054  # Normal 97.5% quantile.


def test_wilson_interval_by_hand():
  # k = 8, n = 10: p = .8, z^2 = 3.8415, denom = 1.38415,
  # center = (.8 + .19207) / 1.38415 = .71674,
  # half = 1.95996 / 1.38415 * sqrt(.016 + .0096036) = .22658.
  low, high = metrics.wilson_interval(8, 10)
  assert low == pytest.approx(0.71674 - 0.22658, abs=1e-4)
  assert high == pytest.approx(0.71674 + 0.22658, abs=1e-4)
  # k = n: low = n / (n + z^2), high = 1.
  low, high = metrics.wilson_interval(10, 10)
  assert low == pytest.approx(10 / (10 + Z95**2))
  assert high == 1.0
  # k = 0 mirrors it.
  low, high = metrics.wilson_interval(0, 10)
  assert low == 0.0 and high == pytest.approx(1 - 10 / (10 + Z95**2))
  # 99% is wider than 95%.
  low99, high99 = metrics.wilson_interval(8, 10, 0.99)
  assert low99 < 0.71674 - 0.22658 and high99 > 0.71674 + 0.22658
  for bad in ((11, 10), (-1, 10), (0, 0)):
    with pytest.raises(ValueError):
      metrics.wilson_interval(*bad)


def test_recall_from_ranks_counts_unranked_as_misses():
  assert_dict_close(
      metrics.recall_from_ranks([1, 10, 11, math.inf], ks=(1, 10, 50)),
      {"rank/recall@1": 25.0, "rank/recall@10": 50.0, "rank/recall@50": 75.0,
       "rank/num_samples": 4.0,
       # Wilson 95% intervals, by hand (z = 1.959964, n = 4):
       # k = 1: center 0.372472, half 0.326886; k = 2: 0.5 +- 0.349961;
       # k = 3: center 0.627528, half 0.326886.
       "rank/recall@1/ci_low": 4.5587, "rank/recall@1/ci_high": 69.9358,
       "rank/recall@10/ci_low": 15.0039, "rank/recall@10/ci_high": 84.9961,
       "rank/recall@50/ci_low": 30.0642, "rank/recall@50/ci_high": 95.4413},
      places=3)


def test_recall_from_ranks_without_samples_has_no_interval():
  assert metrics.recall_from_ranks([], ks=(1,)) == {
      "rank/recall@1": 0.0, "rank/num_samples": 0.0}


def test_mcnemar_exact_by_hand():
  # Discordant: b = 1 (first right only), c = 5 (second right only);
  # p = 2 * P(X <= 1 | n = 6) = 2 * (1 + 6) / 64.
  first = [True, False, False, False, False, False, True, True]
  second = [False, True, True, True, True, True, True, False]
  # The last item is discordant the other way: b = 2, c = 5:
  # p = 2 * (1 + 7 + 21) / 128.
  result = metrics.mcnemar(first, second)
  assert (result["b"], result["c"], result["n"]) == (2, 5, 8)
  assert result["p_value"] == pytest.approx(2 * 29 / 128)
  assert metrics.mcnemar(first[:7], second[:7])["p_value"] == pytest.approx(
      2 * 7 / 64)
  assert metrics.mcnemar([True, False], [True, False])["p_value"] == 1.0
  with pytest.raises(ValueError, match="differ in length"):
    metrics.mcnemar([True], [True, False])
