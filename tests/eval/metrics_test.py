"""Tests for eval/metrics.py: hand-computed values and reference libraries."""

import math
import warnings

from nltk.translate import bleu_score as nltk_bleu
import pytest
import sacrebleu

from eval import metrics


def assert_dict_close(actual, expected, places=6):
  """Every expected key is present and close; the message names the key."""
  for key, value in expected.items():
    assert key in actual, f"missing key {key!r}; got {sorted(actual)}"
    assert actual[key] == pytest.approx(value, abs=10**-places), (
        f"{key}: got {actual[key]!r}, expected {value!r}")


# ================================ rec/ ======================================


# T5-CR's own test cases (googleinterns/e2e-convrec test/test_metrics.py),
# with their expected per-example recall and the 4 / 6 total.
E2E_CASES = [
    ("i think you'll like @ inception (2010) @",
     {"seeker_movies": ["inception (2010)"], "recommender_movies": []}, 0.0),
    (" @ iron man (2008) @ is a good one. i like @ iron man (2008) @ ",
     {"seeker_movies": [], "recommender_movies": ["iron man (2008)"]}, 100.0),
    ("you should watch @ the postman (postino, il) (1994) @ or "
     "@ sense and sensibility (1995) @",
     {"seeker_movies": ["the postman (postino, il) (1994)"],
      "recommender_movies": ["sense and sensibility (1995)"]}, 100.0),
    ("@ the exorcist (1973) @ and @ training day (2001) @ are all good",
     {"seeker_movies": ["iron man (2008)"],
      "recommender_movies": ["training day (2001)"]}, 50.0),
    ("hi how are you doing? watch @ star trek: generations (1994) @",
     {"seeker_movies": ["iron man (2008)"],
      "recommender_movies": ["richard iii (1995)"]}, 0.0),
    ("what do you think you want to watch?",
     {"seeker_movies": [], "recommender_movies": []}, 0.0),
]


@pytest.mark.parametrize("prediction,target,expected", E2E_CASES)
def test_e2e_recall_per_case(prediction, target, expected):
  assert_dict_close(metrics.e2e_recall([target], [prediction]),
                    {"rec/e2e_recall": expected})


def test_e2e_recall_is_micro_averaged_over_the_set():
  targets = [c[1] for c in E2E_CASES]
  predictions = [c[0] for c in E2E_CASES]
  # Recommendations: 0 + 1 + 1 + 2 + 1 + 0 = 5; hits: 0 + 1 + 1 + 1 + 0 = 3.
  assert_dict_close(metrics.e2e_recall(targets, predictions), {
      "rec/e2e_recall": 60.0,
      "rec/e2e_num_recommendations": 5.0,
      "rec/e2e_num_hits": 3.0,
  })


def test_e2e_recall_normalises_case_and_whitespace_and_bytes():
  target = {"seeker_movies": [b"Heat  (1995)"],
            "recommender_movies": [b"Up (2009)"]}
  result = metrics.e2e_recall(
      [target], ["@ HEAT (1995) @ and @  up   (2009) @"])
  assert_dict_close(result, {"rec/e2e_recall": 100.0,
                             "rec/e2e_num_recommendations": 1.0})


def test_e2e_recall_accepts_title_lists_and_skips_yearless_spans():
  target = {"seeker_movies": [], "recommender_movies": ["up (2009)"]}
  assert_dict_close(
      metrics.e2e_recall([target, target],
                         [["up (2009)", "cars (2006)"], "@ all, @ fine"]),
      {"rec/e2e_recall": 50.0, "rec/e2e_num_recommendations": 2.0})


def test_e2e_recall_zero_without_recommendations():
  target = {"seeker_movies": [], "recommender_movies": []}
  assert metrics.e2e_recall([target], ["hello"])["rec/e2e_recall"] == 0.0


def test_e2e_recall_names_missing_field():
  with pytest.raises(ValueError, match="target 0 has no 'seeker_movies'"):
    metrics.e2e_recall([{"recommender_movies": []}], ["x"])


# ================================ gen/ ======================================


def test_mask_titles():
  assert metrics.mask_titles(
      "i like @ unforgiven (1992) @ and @ dirty harry (1971) @") == (
          "i like __unk__ and __unk__")
  # Not a title: no year in parentheses (T5-CR's own test case).
  assert metrics.mask_titles("@ movie (2002) @ is a good move @ haha @") == (
      "__unk__ is a good move @ haha @")


def test_bleu_identical_is_100_and_matches_sacrebleu():
  refs = ["this is the first sentence", "this sentence is next",
          "this one is the last one"]
  hyps = ["this sentence is first", "next, this one",
          "lastly we have this one"]
  assert_dict_close(metrics.bleu(refs, refs), {"gen/bleu4": 100.0})
  expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="intl").score
  assert_dict_close(metrics.bleu(refs, hyps), {"gen/bleu4": expected})


def test_bleu_hand_computed():
  # 6 hypothesis tokens "a b c d e f" vs reference "a b c d e g":
  # p1 = 5/6, p2 = 4/5, p3 = 3/4, p4 = 2/3, equal lengths (BP = 1).
  expected = 100 * (5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
  assert_dict_close(metrics.bleu(["a b c d e g"], ["a b c d e f"]),
                    {"gen/bleu4": expected}, places=4)


def test_bleu_titles_masked_equals_bleu_of_masked_text():
  refs = ["you should watch @ inception (2010) @",
          "you should watch @ sense and sensibility (1995) @ or @ the "
          "postman (postino, il) (1994) @"]
  hyps = ["i think you should watch @ heat (1995) @",
          "you should try @ up (2009) @ or @ alien (1979) @"]
  masked = metrics.bleu(
      ["you should watch __unk__", "you should watch __unk__ or __unk__"],
      ["i think you should watch __unk__",
       "you should try __unk__ or __unk__"])["gen/bleu4"]
  assert_dict_close(metrics.bleu_titles_masked(refs, hyps),
                    {"gen/bleu4_titles_masked": masked})
  assert metrics.bleu_titles_masked(refs, hyps)[
      "gen/bleu4_titles_masked"] > metrics.bleu(refs, hyps)["gen/bleu4"]


def test_sentence_bleu_hand_computed():
  # hyp "the cat sat" vs ref "the cat sat down": p1 = 1, p2 = 1,
  # BP = exp(1 - 4/3).
  bp = math.exp(1 - 4 / 3)
  result = metrics.sentence_bleu_nltk(["the cat sat down"], ["the cat sat"])
  assert_dict_close(result, {
      "gen/bleu1_sentence_avg_nltk": 100 * bp,
      "gen/bleu2_sentence_avg_nltk": 100 * bp,
      "gen/bleu2_cumulative_sentence_avg_nltk": 100 * bp,
  })
  # Averaged with a reply without any match (0): half of it.
  result = metrics.sentence_bleu_nltk(["the cat sat down", "hello"],
                                      ["the cat sat", "bye"])
  assert_dict_close(result, {"gen/bleu1_sentence_avg_nltk": 50 * bp})


PAIRS = [
    ("i think you would like the movie a lot", "you would like it a lot"),
    ("have you seen @ heat (1995) @ ? it is great",
     "have you seen it ? it is really great"),
    ("no", "yes i did"),
    ("a a a a", "a a"),
    ("the matrix is a good one", "the matrix"),
    ("", "something"),
]


@pytest.mark.parametrize("name", sorted(metrics.SENTENCE_BLEU_WEIGHTS))
def test_sentence_bleu_matches_nltk(name):
  weights = metrics.SENTENCE_BLEU_WEIGHTS[name]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # NLTK warns on zero n-gram overlaps.
    expected = [nltk_bleu.sentence_bleu([r.split()], h.split(),
                                        weights=weights) for r, h in PAIRS]
  result = metrics.sentence_bleu_nltk([r for r, _ in PAIRS],
                                      [h for _, h in PAIRS])
  assert_dict_close(
      result, {f"gen/{name}_sentence_avg_nltk":
               100 * sum(expected) / len(expected)})


def test_distinct_both_conventions():
  predictions = ["a b a", "a b c"]
  # Unigrams: {a, b, c} of 6; bigrams: {ab, ba, bc} of 4;
  # trigrams: {aba, abc} of 2; no 4-gram.
  assert_dict_close(metrics.distinct(None, predictions), {
      "gen/distinct1_per_response": 3 / 2,
      "gen/distinct1_ratio": 3 / 6,
      "gen/distinct2_per_response": 3 / 2,
      "gen/distinct2_ratio": 3 / 4,
      "gen/distinct3_per_response": 2 / 2,
      "gen/distinct3_ratio": 2 / 2,
      "gen/distinct4_per_response": 0.0,
      "gen/distinct4_ratio": 0.0,
  })


def test_distinct_ngrams_do_not_cross_replies():
  # "x y" + "z": no bigram "y z".
  assert_dict_close(metrics.distinct(None, ["x y", "z"]), {
      "gen/distinct2_per_response": 1 / 2, "gen/distinct2_ratio": 1.0})


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


def test_redial_metric_fns_take_postprocessed_targets():
  # What `crs_tasks.postprocessors.redial_postprocess` makes of a target.
  targets = [{"text": "try @ heat (1995) @ !", "seeker_movies": [],
              "recommender_movies": ["heat (1995)"]}]
  predictions = ["try @ heat (1995) @ !"]  # 5 distinct tokens.
  result = {}
  for fn in metrics.REDIAL_METRIC_FNS:
    result.update(fn(targets, predictions))
  assert_dict_close(result, {"rec/e2e_recall": 100.0, "gen/bleu4": 100.0,
                             "gen/bleu4_titles_masked": 100.0,
                             "gen/bleu1_sentence_avg_nltk": 100.0,
                             "gen/distinct1_per_response": 5.0})


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
