"""Tests for crs_tasks/metrics.py: hand values and reference libraries."""

import math
import warnings

from nltk.translate import bleu_score as nltk_bleu
import pytest
import sacrebleu

from crs_tasks import metrics


def assert_dict_close(actual, expected, places=6):
  """Every expected key is present and close; the message names the key."""
  for key, value in expected.items():
    assert key in actual, f"missing key {key!r}; got {sorted(actual)}"
    assert actual[key] == pytest.approx(value, abs=10**-places), (
        f"{key}: got {actual[key]!r}, expected {value!r}")


# ------------------------------ extract_titles ------------------------------


def test_extract_titles_in_order_stripped_duplicates_kept():
  text = "watch @ Heat (1995) @ or @  up   (2009) @! @ Heat (1995) @"
  assert metrics.extract_titles(text) == [
      "Heat (1995)", "up (2009)", "Heat (1995)"]


def test_extract_titles_from_bytes():
  assert metrics.extract_titles("@ amélie (2001) @".encode()) == [
      "amélie (2001)"]


def test_extract_titles_without_titles_is_empty():
  assert metrics.extract_titles("no movies here") == []


def test_extract_titles_ignores_unpaired_empty_and_raw_mentions():
  assert metrics.extract_titles(
      "@ @ saw @123 and @ Jaws (1975) @ @") == ["Jaws (1975)"]



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
