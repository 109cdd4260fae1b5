"""The ReDial Tasks' metrics: pure `(targets, predictions) -> dict`.

`rec/`: end-to-end recall of generated replies (T5-CR); `gen/`: BLEU and
distinct-n under the conventions in use. Recalls and BLEU are 0-100. The
ReDial Tasks register `REDIAL_METRIC_FNS` as their `metric_fns` (seqio's
Evaluator, t5x), so they live beside the Tasks; `eval/metrics.py` holds
the measurements of ranked lists and runs (`rank/`, intervals, McNemar).

Titles match when equal after lower-casing and collapsing whitespace
(`normalize_title`). This module imports nothing of the project.

`rec/e2e_recall` is what the T5-CR authors *intended*, not what their code
computes literally. Their `rd_recall` (googleinterns/e2e-convrec
`trainer/metrics.py`) takes the titles of a prediction *decoded by
SentencePiece*, which collapses runs of spaces, and looks them up with exact
string equality in metadata built from the raw ReDial names lower-cased,
which keep them (`"police academy  (1984)"`; 5,321 of the 7,978 test
examples hold such a title). So a correct title often matches nothing. On
the ReDial test split (tests/crs_tasks/t5cr_format_real_data_test.py):

| replies                        | authors' code, literally | ours            |
|--------------------------------|--------------------------|-----------------|
| gold, decoded                  | 48.75 (2,201 / 4,515)    | 100.00 (4,321)  |
| gold, raw (never decoded)      | 99.98 (4,320 / 4,321)    | 100.00 (4,321)  |
| repeat last context, decoded   | 37.13 (1,541 / 4,150)    | 99.97 (3,121 / 3,122) |

("Repeat the last context movie": the reply `@ <the most recently mentioned
movie> @`, empty when none; the miss in our column is one title SentencePiece
changes.) The authors' own unit test expects about 100 on gold replies, so
ours is the number they meant; the literal one is not comparable with it.
"""

import collections
import math
import re
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import sacrebleu

Prediction = Union[str, Sequence[str]]
Text = Union[str, bytes]

# A `@ ... @` span holding a parenthesis, i.e. a title with a year
# ("@ heat (1995) @"): the pattern T5-CR's `replace_titles` and
# `isolate_titles` use (googleinterns/e2e-convrec, trainer/metrics.py).
TITLE_SPAN_RE = re.compile(r"@([^@]*\([^@]*\)[^@]*)@")
TITLE_PLACEHOLDER = "__unk__"  # T5-CR's replacement token.


# `@`, then the shortest run without `@`, then `@`: "@ heat (1995) @".
_MARKED_RE = re.compile(r"@([^@]*)@")
# An unresolved ReDial mention (`@12345`, no space) is not a marker.
_RAW_MENTION_RE = re.compile(r"@(?=\d)")


def to_text(value: Text) -> str:
  """A feature value as str (bytes decoded as UTF-8): the project's one
  bytes-to-str helper."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def extract_titles(text: Text) -> list[str]:
  """Titles between `@ ... @` pairs, stripped, in order of appearance.

  `"watch @ Heat (1995) @ or @ up (2009) @!"` gives `["Heat (1995)",
  "up (2009)"]`. Markers pair left to right; an unpaired trailing `@` and
  empty spans (`@ @`) are ignored.

  Args:
    text: generated or reference text (str or UTF-8 bytes).

  Returns:
    The titles, duplicates kept.
  """
  titles = []
  text = _RAW_MENTION_RE.sub("", to_text(text))
  for match in _MARKED_RE.finditer(text):
    title = " ".join(match.group(1).split())
    if title:
      titles.append(title)
  return titles


def normalize_title(title: Text) -> str:
  """Lower-cases, strips and collapses whitespace (the matching rule)."""
  return " ".join(to_text(title).lower().split())


def titles_in(prediction: Prediction) -> list[str]:
  """Normalised titles of a reply (text) or of a list of titles.

  In text, titles are the `extract_titles` spans holding a parenthesis, as
  T5-CR's regex requires (`@ all, @` is not a title).
  """
  if isinstance(prediction, (str, bytes)):
    found = extract_titles(prediction)
    found = [t for t in found if TITLE_SPAN_RE.fullmatch(f"@{t}@")]
  else:
    found = list(prediction)
  return [normalize_title(t) for t in found]


# ============================ rec/ (end to end) =============================


def e2e_recall_from_titles(
    prediction_titles: Sequence[Sequence[str]],
    seeker_movies: Sequence[Sequence[str]],
    recommender_movies: Sequence[Sequence[str]],
) -> dict[str, float]:
  """T5-CR's end-to-end recall (googleinterns/e2e-convrec `rd_recall`).

  A reply's distinct titles that the seeker did not mention are its
  recommendations; a hit is one the recommender suggested anywhere in the
  dialogue. Counts are summed over the set.

  Args:
    prediction_titles: titles of each generated reply.
    seeker_movies: per example, the movies the seeker mentioned.
    recommender_movies: per example, the movies the recommender suggested.

  Returns:
    `rec/e2e_recall` (100 * hits / recommendations; 0 without any),
    `rec/e2e_num_recommendations`, `rec/e2e_num_hits`.
  """
  if not len(prediction_titles) == len(seeker_movies) == len(
      recommender_movies):
    raise ValueError(
        f"lengths differ: {len(prediction_titles)} predictions, "
        f"{len(seeker_movies)} seeker_movies, "
        f"{len(recommender_movies)} recommender_movies")
  hits = total = 0
  for titles, seeker, recommender in zip(prediction_titles, seeker_movies,
                                         recommender_movies):
    seeker = {normalize_title(t) for t in seeker}
    recommender = {normalize_title(t) for t in recommender}
    recs = {normalize_title(t) for t in titles} - seeker
    total += len(recs)
    hits += len(recs & recommender)
  return {
      "rec/e2e_recall": 100.0 * hits / total if total else 0.0,
      "rec/e2e_num_recommendations": float(total),
      "rec/e2e_num_hits": float(hits),
  }


def e2e_recall(
    targets: Sequence[Mapping[str, Any]],
    predictions: Sequence[Prediction],
) -> dict[str, float]:
  """`e2e_recall_from_titles` of replies (text or title lists).

  Args:
    targets: mappings with `seeker_movies` and `recommender_movies`, e.g.
      what `crs_tasks.postprocessors.redial_postprocess` makes of targets.
    predictions: generated replies or their title lists.

  Returns:
    See `e2e_recall_from_titles`.
  """
  for i, target in enumerate(targets):
    for key in ("seeker_movies", "recommender_movies"):
      if key not in target:
        raise ValueError(f"target {i} has no {key!r} field (keys: "
                         f"{sorted(target)}); e2e_recall needs the ReDial "
                         "metadata features")
  return e2e_recall_from_titles(
      [titles_in(p) for p in predictions],
      [[to_text(t) for t in x["seeker_movies"]] for x in targets],
      [[to_text(t) for t in x["recommender_movies"]] for x in targets])


# ================================ gen/ BLEU =================================


def _texts(values: Iterable[Any], key: str = "text") -> list[str]:
  """Strings from str/bytes or from mappings holding them under `key`."""
  out = []
  for v in values:
    if isinstance(v, Mapping):
      v = v[key]
    out.append(to_text(v))
  return out


def mask_titles(text: str, placeholder: str = TITLE_PLACEHOLDER) -> str:
  """`"see @ heat (1995) @ !"` -> `"see __unk__ !"` (each title span)."""
  return TITLE_SPAN_RE.sub(placeholder, text)


def bleu(targets: Sequence[Any],
         predictions: Sequence[Any]) -> dict[str, float]:
  """`gen/bleu4`: sacrebleu corpus BLEU with T5's `bleu` settings.

  Targets and predictions are str, bytes or mappings with `text`.
  """
  refs, hyps = _texts(targets), _texts(predictions)
  if len(refs) != len(hyps):
    raise ValueError(f"{len(refs)} targets but {len(hyps)} predictions")
  result = sacrebleu.corpus_bleu(
      hyps, [refs], smooth_method="exp", smooth_value=0.0, force=False,
      lowercase=False, tokenize="intl", use_effective_order=False)
  return {"gen/bleu4": float(result.score)}


def bleu_titles_masked(targets: Sequence[Any],
                       predictions: Sequence[Any]) -> dict[str, float]:
  """`gen/bleu4_titles_masked`: BLEU-4 after `mask_titles` on both sides.

  T5-CR's `bleu_no_titles`: naming another movie than the reference does
  not change the score.
  """
  refs = [mask_titles(t) for t in _texts(targets)]
  hyps = [mask_titles(p) for p in _texts(predictions)]
  return {"gen/bleu4_titles_masked": bleu(refs, hyps)["gen/bleu4"]}


def _ngram_counts(tokens: Sequence[str], n: int) -> collections.Counter:
  return collections.Counter(
      tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(reference: Sequence[str], hypothesis: Sequence[str],
                  weights: Sequence[float]) -> float:
  """NLTK's `sentence_bleu` (one reference, no smoothing), in 0-1.

  Clipped n-gram precisions, weighted geometric mean, brevity penalty
  `exp(1 - r / c)` when `c < r`; 0 without a unigram match or when an order
  with positive weight has no match (NLTK: about 1e-308).
  """
  log_sum, unigram_matches = 0.0, None
  for n, weight in enumerate(weights, start=1):
    hyp_counts = _ngram_counts(hypothesis, n)
    ref_counts = _ngram_counts(reference, n)
    matches = sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
    if n == 1:
      unigram_matches = matches
    if weight == 0:
      continue
    if matches == 0:
      return 0.0
    log_sum += weight * math.log(matches / max(1, sum(hyp_counts.values())))
  if unigram_matches == 0:
    return 0.0
  c, r = len(hypothesis), len(reference)
  brevity = 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - r / c))
  return brevity * math.exp(log_sum)


# Weights of the sentence-level BLEU variants of KGSF / CRSLab / UniCRS: their
# "BLEU-k" puts all weight on order k (e.g. CRSLab `BleuMetric`, UniCRS
# `compute_bleu`: `weights[k - 1] = 1`). `bleu2_cumulative` is the usual
# cumulative BLEU-2, weights (0.5, 0.5).
SENTENCE_BLEU_WEIGHTS = {
    "bleu1": (1.0, 0.0, 0.0, 0.0),
    "bleu2": (0.0, 1.0, 0.0, 0.0),
    "bleu3": (0.0, 0.0, 1.0, 0.0),
    "bleu4": (0.0, 0.0, 0.0, 1.0),
    "bleu2_cumulative": (0.5, 0.5, 0.0, 0.0),
}


def sentence_bleu_nltk(targets: Sequence[Any],
                       predictions: Sequence[Any]) -> dict[str, float]:
  """Sentence-averaged BLEU as KGSF, CRSLab and UniCRS report it.

  Whitespace tokens, `sentence_bleu` per reply against its reference,
  averaged; weights from `SENTENCE_BLEU_WEIGHTS`. Not comparable with corpus
  BLEU (`gen/bleu4`).

  Returns `gen/{name}_sentence_avg_nltk` per weight name, 0-100 (the papers
  print the 0-1 average).
  """
  refs, hyps = _texts(targets), _texts(predictions)
  if len(refs) != len(hyps):
    raise ValueError(f"{len(refs)} targets but {len(hyps)} predictions")
  out = {}
  for name, weights in SENTENCE_BLEU_WEIGHTS.items():
    scores = [sentence_bleu(r.split(), h.split(), weights)
              for r, h in zip(refs, hyps)]
    out[f"gen/{name}_sentence_avg_nltk"] = (
        100.0 * float(np.mean(scores)) if scores else 0.0)
  return out


# ============================== gen/ distinct ===============================


def distinct(targets: Optional[Sequence[Any]],
             predictions: Sequence[Any],
             max_n: int = 4) -> dict[str, float]:
  """Distinct-n of replies (whitespace tokens) under both conventions.

  `gen/distinct{n}_per_response`: distinct n-grams of all replies / number
  of replies (KGSF, CRSLab, UniCRS `dist@n`; UniCRS skips empty replies).
  `gen/distinct{n}_ratio`: distinct / all n-grams (Li et al. 2016).

  `targets` is unused (seqio metric signature); n = 1..max_n.
  """
  del targets  # Unused.
  token_lists = [h.split() for h in _texts(predictions)]
  out = {}
  for n in range(1, max_n + 1):
    unique, total = set(), 0
    for tokens in token_lists:
      grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
      unique.update(grams)
      total += len(grams)
    out[f"gen/distinct{n}_per_response"] = (
        len(unique) / len(token_lists) if token_lists else 0.0)
    out[f"gen/distinct{n}_ratio"] = len(unique) / total if total else 0.0
  return out


# The ReDial tasks' `metric_fns` (targets from `redial_postprocess`).
REDIAL_METRIC_FNS = (e2e_recall, bleu, bleu_titles_masked, sentence_bleu_nltk,
                     distinct)
