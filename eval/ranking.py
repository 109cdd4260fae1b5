"""ReDial ranking protocols over the whole movie list.

Standard (KBRD, KGSF, CRSLab, UniCRS): one sample per (recommender turn,
movie mentioned in it); every movie of `movies_with_mentions.csv` is ranked
by the log-likelihood of the reply `@ Title (Year) @` given the context.
De-duplicated: labels already in `context_movies` are dropped and those
movies are excluded from the ranking, so repeating the dialogue earns
nothing. Both run on any `ScoreFn` (fakes in tests); `make_model_score_fn`
wraps `EncoderDecoderModel.score_candidates`. Ties count against the label
(rank = candidates scoring at least as high), so a constant scorer gets 0.
"""

import csv
import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, Union

import numpy as np

from crs_tasks import postprocessors
from crs_tasks import titles as titles_lib
from eval import metrics as metrics_lib

Array = Any  # jax.Array or np.ndarray.
PyTree = Any
Example = Mapping[str, Any]
# (contexts [B] as text or int32 tokens [B, L], candidate replies [C])
# -> scores float [B, C], higher is better.
ScoreFn = Callable[[Union[Sequence[str], np.ndarray], Sequence[str]],
                   np.ndarray]

DEFAULT_KS = (1, 10, 50)


# ============================== Movie list ==================================


@dataclasses.dataclass(frozen=True)
class MovieList:
  """Candidate movies, one per distinct title; `mentions` is nbMentions."""

  titles: tuple[str, ...]
  mentions: tuple[int, ...]
  num_rows: int

  @functools.cached_property
  def index(self) -> dict[str, int]:
    """Matching key (`metrics.normalize_title`) -> position in `titles`."""
    return {metrics_lib.normalize_title(t): i for i, t in
            enumerate(self.titles)}


def load_movie_list(path: str, *, lowercase: bool = True) -> MovieList:
  """Reads `movies_with_mentions.csv` (movieId,movieName,nbMentions).

  Titles are normalised as the task text (`titles.clean_text`,
  lower-cased when `lowercase`); equal titles are merged, mentions summed.

  Args:
    path: the csv file.
    lowercase: lower-case titles (the paper's casing).

  Returns:
    The movie list, in file order.

  Raises:
    ValueError: naming the file, line and field of a bad row.
  """
  titles, mentions = [], []
  position = {}
  num_rows = 0
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    for field in ("movieName", "nbMentions"):
      if field not in (reader.fieldnames or []):
        raise ValueError(f"{path}: header has no {field!r} column "
                         f"(got {reader.fieldnames})")
    for row in reader:
      line = reader.line_num
      name, count = row.get("movieName"), row.get("nbMentions")
      if not name:
        raise ValueError(f"{path}:{line}: empty field 'movieName'")
      try:
        count = int(count)
      except (TypeError, ValueError):
        raise ValueError(f"{path}:{line}: field 'nbMentions' is not an "
                         f"integer: {count!r}") from None
      num_rows += 1
      title = titles_lib.clean_text(name)
      if lowercase:
        title = title.lower()
      key = metrics_lib.normalize_title(title)
      if key in position:
        mentions[position[key]] += count
        continue
      position[key] = len(titles)
      titles.append(title)
      mentions.append(count)
  return MovieList(tuple(titles), tuple(mentions), num_rows)


def candidate_reply(title: str) -> str:
  """The reply whose likelihood ranks a movie: `@ Title (Year) @`."""
  return f"@ {title} @"


# ================================ Samples ===================================


def titles_of(example: Example, key: str) -> list[str]:
  """A title-list feature (list, array, bytes or str) as a list of str."""
  value = example.get(key, [])
  if isinstance(value, (str, bytes)):
    value = [value]
  return [postprocessors.to_text(v)
          for v in np.asarray(value, dtype=object).reshape(-1)]


def text_field(example: Example, keys: Sequence[str], what: str) -> str:
  """The first of `keys` that holds text (str or bytes) in `example`."""
  for key in keys:
    value = example.get(key)
    if isinstance(value, (str, bytes)):
      return postprocessors.to_text(value)
  raise ValueError(f"example has no text {what} (string "
                   f"{' or '.join(repr(k) for k in keys)}); keys: "
                   f"{sorted(example)}")


def context_of(example: Example) -> str:
  """The dialogue context text of a ReDial example."""
  return text_field(
      example, ("inputs_pretokenized", "inputs", "context"), "context")


@dataclasses.dataclass
class RankingSamples:
  """Per context: label and excluded candidate indices; plus counts of
  labels missing from the movie list and labels dropped by de-duplication.
  """

  contexts: list[str] = dataclasses.field(default_factory=list)
  labels: list[list[int]] = dataclasses.field(default_factory=list)
  excluded: list[list[int]] = dataclasses.field(default_factory=list)
  num_missing: int = 0
  num_dropped: int = 0

  @property
  def num_samples(self) -> int:
    return sum(len(x) for x in self.labels) + self.num_missing


def build_samples(
    examples: Sequence[Example],
    movies: MovieList,
    *,
    dedup: bool,
) -> RankingSamples:
  """One sample per (example, distinct movie of `target_movies`).

  Args:
    examples: ReDial examples with `target_movies`, `context_movies` and a
      text context.
    movies: the candidate list.
    dedup: drop labels in `context_movies`, exclude those candidates.

  Returns:
    The samples (labels not in the list only counted, as misses).
  """
  out = RankingSamples()
  for example in examples:
    targets = list(dict.fromkeys(
        metrics_lib.normalize_title(t)
        for t in titles_of(example, "target_movies")))
    excluded = []
    if dedup:
      seen = {metrics_lib.normalize_title(t)
              for t in titles_of(example, "context_movies")}
      out.num_dropped += sum(t in seen for t in targets)
      targets = [t for t in targets if t not in seen]
      excluded = sorted(movies.index[t] for t in seen if t in movies.index)
    labels = [movies.index[t] for t in targets if t in movies.index]
    out.num_missing += len(targets) - len(labels)
    if labels:
      out.contexts.append(context_of(example))
      out.labels.append(labels)
      out.excluded.append(excluded)
  return out


def label_ranks(scores: np.ndarray, labels: Sequence[Sequence[int]],
                excluded: Sequence[Sequence[int]]) -> list[int]:
  """1-based rank per label: candidates (not excluded) scoring >= it.

  Raises ValueError when a label's score is NaN.
  """
  scores = np.asarray(scores, dtype=np.float64)
  ranks = []
  for row, row_labels, row_excluded in zip(scores, labels, excluded):
    if row_excluded:
      row = row.copy()
      row[list(row_excluded)] = -np.inf
    for label in row_labels:
      if np.isnan(row[label]):
        raise ValueError(f"score of candidate {label} is NaN")
      ranks.append(int(np.sum(row >= row[label])))
  return ranks


# =============================== Protocols ==================================


def evaluate_protocol(
    score_fn: ScoreFn,
    examples: Sequence[Example],
    *,
    movies: MovieList,
    dedup: bool = False,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 32,
) -> dict[str, float]:
  """Recall@k of a scorer under the standard or de-duplicated protocol.

  Args:
    score_fn: `fn(contexts, candidate_replies) -> [B, C]`.
    examples: ReDial task examples.
    movies: the candidate movie list.
    dedup: the de-duplicated protocol.
    ks: recall cut-offs.
    batch_size: contexts per `score_fn` call.

  Returns:
    `{p}/recall@k`, `{p}/num_samples`, `{p}/num_missing` and, when `dedup`,
    `{p}/num_dropped`, with p `rank` or `rank_dedup`.
  """
  prefix = "rank_dedup" if dedup else "rank"
  samples = build_samples(examples, movies, dedup=dedup)
  candidates = [candidate_reply(t) for t in movies.titles]
  ranks = []
  for start in range(0, len(samples.contexts), batch_size):
    end = start + batch_size
    scores = np.asarray(score_fn(samples.contexts[start:end], candidates))
    expected = (len(samples.contexts[start:end]), len(candidates))
    if scores.shape != expected:
      raise ValueError(f"score_fn returned shape {scores.shape}, expected "
                       f"{expected}")
    ranks += label_ranks(scores, samples.labels[start:end],
                         samples.excluded[start:end])
  ranks += [math.inf] * samples.num_missing
  out = metrics_lib.recall_from_ranks(ranks, ks, prefix)
  out[f"{prefix}/num_missing"] = float(samples.num_missing)
  if dedup:
    out[f"{prefix}/num_dropped"] = float(samples.num_dropped)
  return out


def standard_protocol(score_fn: ScoreFn, examples: Sequence[Example], *,
                      movies: MovieList, **kwargs) -> dict[str, float]:
  """`evaluate_protocol` with `dedup=False` (`rank/...`)."""
  return evaluate_protocol(score_fn, examples, movies=movies, dedup=False,
                           **kwargs)


def dedup_protocol(score_fn: ScoreFn, examples: Sequence[Example], *,
                   movies: MovieList, **kwargs) -> dict[str, float]:
  """`evaluate_protocol` with `dedup=True` (`rank_dedup/...`)."""
  return evaluate_protocol(score_fn, examples, movies=movies, dedup=True,
                           **kwargs)


def make_protocols(
    movies: MovieList, **kwargs
) -> dict[str, Callable[[ScoreFn, Sequence[Example]], dict[str, float]]]:
  """`{"rank": fn, "rank_dedup": fn}`, `fn(score_fn, examples)`, for
  `eval.evaluation.evaluate(ranking_fns=...)`; kwargs go to
  `evaluate_protocol`.
  """
  return {
      "rank": functools.partial(standard_protocol, movies=movies, **kwargs),
      "rank_dedup": functools.partial(dedup_protocol, movies=movies,
                                      **kwargs),
  }


# ============================== Model adapter ===============================


class CandidateScorer(Protocol):
  """What `make_model_score_fn` needs of `train.models.EncoderDecoderModel`."""

  def score_candidates(self, params: PyTree, encoder_input_tokens: Array,
                       candidate_tokens: Array) -> Array:
    ...


def encode_texts(vocabulary: Any, texts: Sequence[str],
                 length: int) -> list[list[int]]:
  """Token ids with EOS, keeping the first `length` tokens (EOS last)."""
  return [list(vocabulary.encode(t))[: length - 1] + [vocabulary.eos_id]
          for t in texts]


def encode(vocabulary: Any, texts: Sequence[str], length: int,
           pad_to: Optional[int] = None) -> np.ndarray:
  """int32 [N, pad_to or longest] ids + EOS, at most `length` (seqio trim)."""
  rows = encode_texts(vocabulary, texts, length)
  width = pad_to or max([len(r) for r in rows] + [1])
  out = np.zeros((len(rows), width), np.int32)
  for i, row in enumerate(rows):
    out[i, : len(row)] = row
  return out


def make_model_score_fn(
    model: CandidateScorer,
    params: PyTree,
    vocabulary: Any,
    *,
    inputs_length: int = 512,
    targets_length: int = 64,
    batch_size: int = 16,
) -> ScoreFn:
  """A `ScoreFn` backed by `model.score_candidates`.

  Candidates are tokenised once per candidate list (cached), padded to the
  longest; contexts (text, or int32 tokens) are padded to `inputs_length`
  and batched `batch_size` at a time, a last partial batch padded to a power
  of two, so few shapes compile. Scores are cached per
  context (for the current candidate list), so a turn mentioning several
  movies, and the same turn under another protocol (`rank_dedup` after
  `rank`), is scored once.

  Args:
    model: has `score_candidates(params, [B, Lin], [C, Lt]) -> [B, C]`.
    params: model parameters.
    vocabulary: seqio vocabulary of inputs and targets.
    inputs_length: encoder length (longer contexts keep their start).
    targets_length: maximum candidate length.
    batch_size: contexts per model call.

  Returns:
    `fn(contexts, candidates) -> float32 [B, C]` log-likelihoods.
  """
  cache = {"key": None, "cand": None, "rows": {}}

  def score(contexts, candidates):
    key = tuple(candidates)
    if cache["key"] != key:
      cache.update(key=key, rows={},
                   cand=encode(vocabulary, candidates, targets_length))
    cand, rows_cache = cache["cand"], cache["rows"]
    if isinstance(contexts, np.ndarray) and contexts.dtype.kind in "iu":
      enc = np.zeros((len(contexts), inputs_length), np.int32)
      width = min(inputs_length, contexts.shape[1])
      enc[:, :width] = contexts[:, :width]
    else:
      enc = encode(vocabulary, list(contexts), inputs_length,
                   pad_to=inputs_length)
    if not len(enc):
      return np.zeros((0, len(candidates)), np.float32)
    keys = [row.tobytes() for row in enc]
    todo = list({k: i for i, k in enumerate(keys)
                 if k not in rows_cache}.values())
    for start in range(0, len(todo), batch_size):
      idx = todo[start:start + batch_size]
      rows = enc[idx]
      n = len(rows)
      # Pad with copies of the last row to a power of two (at most
      # batch_size): few shapes to compile, little work wasted.
      width = min(batch_size, 1 << (n - 1).bit_length())
      if n < width:
        rows = np.concatenate([rows, np.repeat(rows[-1:], width - n, 0)])
      scores = np.asarray(model.score_candidates(params, rows, cand))
      for i, row_scores in zip(idx, scores[:n]):
        rows_cache[keys[i]] = row_scores.astype(np.float32)
    return np.stack([rows_cache[k] for k in keys])

  return score

