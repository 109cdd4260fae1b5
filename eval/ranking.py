"""ReDial ranking protocols over the whole movie list.

Standard (KBRD, KGSF, CRSLab, UniCRS): one sample per (recommender turn with
a non-empty context, distinct movie mentioned in it); every movie of
`movies_with_mentions.csv` is ranked by the log-likelihood of the reply
`@ Title (Year) @` given the context. The peers all require a context:
CRSLab keeps a turn only if `len(context_tokens) > 0`, KGSF and UniCRS
likewise, so a recommender turn that opens the dialogue is no sample. On
the official test split: 4,897 samples over 3,617 turns (54 opening turns,
72 samples, left out).
De-duplicated: labels already in `context_movies` are dropped and those
movies are excluded from the ranking, so repeating the dialogue earns
nothing: 4,426 samples over 3,372 turns.

Both run on any `CandidateScoreFn`, `fn(examples, candidate_replies) ->
[B, C]` (fakes and baselines in tests; `train.inference.CandidateScorer` for a
model, which scores each example's own encoder tokens: the ones generation
decodes from). Ties count against the label (rank = candidates scoring at
least as high), so a constant scorer gets 0.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tqdm

from crs_tasks import metrics as task_metrics
from crs_tasks import redial_movies
from crs_tasks import titles as titles_lib
from eval import metrics as metrics_lib

Example = Mapping[str, Any]
# (examples [B], candidate replies [C]) -> scores float [B, C], higher is
# better. `train.inference.CandidateScorer` for a model.
CandidateScoreFn = Callable[[Sequence[Example], Sequence[str]], np.ndarray]
# (scorer, examples) -> metrics: a protocol as `eval.evaluation` runs it.
RankingFn = Callable[[CandidateScoreFn, Sequence[Example]],
                     Mapping[str, float]]

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
    return {task_metrics.normalize_title(t): i for i, t in
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
    errors.UserError: naming the file, line and field of a bad header or
      row (`crs_tasks.redial_movies.read_movie_list`).
  """
  titles, mentions = [], []
  position = {}
  rows = redial_movies.read_movie_list(path)
  for movie in rows:
    title = titles_lib.clean_text(movie.name)
    if lowercase:
      title = title.lower()
    key = task_metrics.normalize_title(title)
    if key in position:
      mentions[position[key]] += movie.mentions
      continue
    position[key] = len(titles)
    titles.append(title)
    mentions.append(movie.mentions)
  return MovieList(tuple(titles), tuple(mentions), len(rows))


def candidate_reply(title: str) -> str:
  """The reply whose likelihood ranks a movie: `@ Title (Year) @`."""
  return f"@ {title} @"


# ================================ Samples ===================================


def titles_of(example: Example, key: str) -> list[str]:
  """A title-list feature (list, array, bytes or str) as a list of str."""
  value = example.get(key, [])
  if isinstance(value, (str, bytes)):
    value = [value]
  return [task_metrics.to_text(v)
          for v in np.asarray(value, dtype=object).reshape(-1)]


def has_context(example: Example) -> bool:
  """Whether the turn has dialogue before it (`turn_index > 0`).

  `turn_index` counts the dialogue's turns after merging consecutive
  messages of a speaker and dropping empty ones, so it is 0 exactly when
  the context is empty (the recommender opens the dialogue).
  """
  if "turn_index" not in example:
    raise ValueError("ranking needs the ReDial `turn_index` feature; keys: "
                     f"{sorted(example)}")
  return int(np.asarray(example["turn_index"]).reshape(-1)[0]) > 0


@dataclasses.dataclass
class RankingSamples:
  """Per scored example: its label and excluded candidate indices; plus
  counts of labels missing from the movie list, labels dropped by
  de-duplication and labels of turns without context (not samples).
  """

  examples: list[Example] = dataclasses.field(default_factory=list)
  labels: list[list[int]] = dataclasses.field(default_factory=list)
  excluded: list[list[int]] = dataclasses.field(default_factory=list)
  num_missing: int = 0
  num_dropped: int = 0
  num_without_context: int = 0

  @property
  def num_samples(self) -> int:
    return sum(len(x) for x in self.labels) + self.num_missing

  @property
  def num_turns(self) -> int:
    return len(self.examples)


def build_samples(
    examples: Sequence[Example],
    movies: MovieList,
    *,
    dedup: bool,
) -> RankingSamples:
  """One sample per (example with context, distinct movie of
  `target_movies`).

  Args:
    examples: ReDial examples with `target_movies`, `context_movies` and
      `turn_index`.
    movies: the candidate list.
    dedup: drop labels in `context_movies`, exclude those candidates.

  Returns:
    The samples (labels not in the list only counted, as misses; turns
    without context only counted, in `num_without_context`).
  """
  out = RankingSamples()
  for example in examples:
    targets = list(dict.fromkeys(
        task_metrics.normalize_title(t)
        for t in titles_of(example, "target_movies")))
    if not has_context(example):
      out.num_without_context += len(targets)
      continue
    excluded = []
    if dedup:
      seen = {task_metrics.normalize_title(t)
              for t in titles_of(example, "context_movies")}
      out.num_dropped += sum(t in seen for t in targets)
      targets = [t for t in targets if t not in seen]
      excluded = sorted(movies.index[t] for t in seen if t in movies.index)
    labels = [movies.index[t] for t in targets if t in movies.index]
    out.num_missing += len(targets) - len(labels)
    if labels:
      out.examples.append(example)
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
    score_fn: CandidateScoreFn,
    examples: Sequence[Example],
    *,
    movies: MovieList,
    dedup: bool = False,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, float]:
  """Recall@k of a scorer under the standard or de-duplicated protocol.

  Args:
    score_fn: `fn(examples, candidate_replies) -> [B, C]`.
    examples: ReDial task examples.
    movies: the candidate movie list.
    dedup: the de-duplicated protocol.
    ks: recall cut-offs.
    batch_size: examples per `score_fn` call.
    progress: show a tqdm bar (turns, with ETA).

  Returns:
    `{p}/recall@k`, `{p}/num_samples`, `{p}/num_turns`, `{p}/num_missing`
    and, when `dedup`, `{p}/num_dropped`, with p `rank` or `rank_dedup`.
  """
  prefix = "rank_dedup" if dedup else "rank"
  samples = build_samples(examples, movies, dedup=dedup)
  candidates = [candidate_reply(t) for t in movies.titles]
  ranks = []
  with tqdm.tqdm(total=samples.num_turns, desc=prefix, unit="turn",
                 disable=not progress) as bar:
    for start in range(0, samples.num_turns, batch_size):
      end = start + batch_size
      batch = samples.examples[start:end]
      scores = np.asarray(score_fn(batch, candidates))
      expected = (len(batch), len(candidates))
      if scores.shape != expected:
        raise ValueError(f"score_fn returned shape {scores.shape}, expected "
                         f"{expected}")
      ranks += label_ranks(scores, samples.labels[start:end],
                           samples.excluded[start:end])
      bar.update(len(batch))
  ranks += [math.inf] * samples.num_missing
  out = metrics_lib.recall_from_ranks(ranks, ks, prefix)
  out[f"{prefix}/num_turns"] = float(samples.num_turns)
  out[f"{prefix}/num_missing"] = float(samples.num_missing)
  if dedup:
    out[f"{prefix}/num_dropped"] = float(samples.num_dropped)
  return out


def standard_protocol(score_fn: CandidateScoreFn,
                      examples: Sequence[Example], *,
                      movies: MovieList, **kwargs) -> dict[str, float]:
  """`evaluate_protocol` with `dedup=False` (`rank/...`)."""
  return evaluate_protocol(score_fn, examples, movies=movies, dedup=False,
                           **kwargs)


def dedup_protocol(score_fn: CandidateScoreFn, examples: Sequence[Example], *,
                   movies: MovieList, **kwargs) -> dict[str, float]:
  """`evaluate_protocol` with `dedup=True` (`rank_dedup/...`)."""
  return evaluate_protocol(score_fn, examples, movies=movies, dedup=True,
                           **kwargs)


def make_protocols(movies: MovieList, **kwargs) -> dict[str, RankingFn]:
  """`{"rank": fn, "rank_dedup": fn}`, `fn(score_fn, examples)`, for
  `eval.evaluation.evaluate(ranking_fns=...)`; kwargs go to
  `evaluate_protocol`.
  """
  return {
      "rank": functools.partial(standard_protocol, movies=movies, **kwargs),
      "rank_dedup": functools.partial(dedup_protocol, movies=movies,
                                      **kwargs),
  }
