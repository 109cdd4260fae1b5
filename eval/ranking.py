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

Two stages, nothing stateful between them:

1. `Protocol.samples(examples)` builds a protocol's samples once, each
   scored turn pointing at its row of a score matrix (`RankingSamples.rows`;
   `with_rows` points them at the rows of a de-duplicated matrix);
2. `Protocol.measure(samples, scores)`, a pure function of the samples and
   the float `[U, C]` score matrix (U rows, C = `candidate_replies(movies)`),
   gives `rank/recall@k`, ... (`eval.metrics.recall_from_ranks`).

`eval.evaluation` computes the matrix of a model once for all protocols
(`train.inference.score_candidates` on the turns' encoder rows, the ones
generation decodes from); `evaluate(score_fn, examples, protocols)` does both
stages with any `CandidateScoreFn`, `fn(examples, candidate_replies) ->
[B, C]` (baselines, fakes in tests). Ties count against the label (rank =
candidates scoring at least as high), so a constant scorer gets 0.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from crs_tasks import metrics as task_metrics
from crs_tasks import redial_movies
from crs_tasks import titles as titles_lib
from eval import metrics as metrics_lib

Example = Mapping[str, Any]
# (examples [B], candidate replies [C]) -> scores float [B, C], higher is
# better. `train.inference.CandidateScorer` for a model.
CandidateScoreFn = Callable[[Sequence[Example], Sequence[str]], np.ndarray]

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


def candidate_replies(movies: MovieList) -> list[str]:
  """The C candidate replies, one per movie: the score matrix's columns."""
  return [candidate_reply(t) for t in movies.titles]


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


@dataclasses.dataclass(frozen=True)
class RankingSamples:
  """The samples of one protocol, per scored turn: its row of the score
  matrix (`rows`, first the index of the turn's example), its labels and
  its excluded candidates (column indices); plus counts of labels missing
  from the movie list, labels dropped by de-duplication and labels of turns
  without context (not samples).
  """

  rows: tuple[int, ...] = ()
  labels: tuple[tuple[int, ...], ...] = ()
  excluded: tuple[tuple[int, ...], ...] = ()
  num_missing: int = 0
  num_dropped: int = 0
  num_without_context: int = 0

  @property
  def num_samples(self) -> int:
    return sum(len(x) for x in self.labels) + self.num_missing

  @property
  def num_turns(self) -> int:
    return len(self.rows)

  def with_rows(self, row_of: Mapping[int, int]) -> "RankingSamples":
    """The same samples, turn i at row `row_of[rows[i]]`."""
    return dataclasses.replace(self, rows=tuple(row_of[r] for r in self.rows))


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
    The samples, `rows` the indices of their examples in `examples` (labels
    not in the list only counted, as misses; turns without context only
    counted, in `num_without_context`).
  """
  rows, all_labels, all_excluded = [], [], []
  num_missing = num_dropped = num_without_context = 0
  for i, example in enumerate(examples):
    targets = list(dict.fromkeys(
        task_metrics.normalize_title(t)
        for t in titles_of(example, "target_movies")))
    if not has_context(example):
      num_without_context += len(targets)
      continue
    excluded = []
    if dedup:
      seen = {task_metrics.normalize_title(t)
              for t in titles_of(example, "context_movies")}
      num_dropped += sum(t in seen for t in targets)
      targets = [t for t in targets if t not in seen]
      excluded = sorted(movies.index[t] for t in seen if t in movies.index)
    labels = [movies.index[t] for t in targets if t in movies.index]
    num_missing += len(targets) - len(labels)
    if labels:
      rows.append(i)
      all_labels.append(tuple(labels))
      all_excluded.append(tuple(excluded))
  return RankingSamples(tuple(rows), tuple(all_labels), tuple(all_excluded),
                        num_missing, num_dropped, num_without_context)


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


@dataclasses.dataclass(frozen=True)
class Protocol:
  """The standard (`dedup=False`, metrics `rank/...`) or de-duplicated
  (`rank_dedup/...`) protocol over `movies`, reporting recall@`ks`."""

  movies: MovieList
  dedup: bool = False
  ks: tuple[int, ...] = DEFAULT_KS

  @property
  def prefix(self) -> str:
    return "rank_dedup" if self.dedup else "rank"

  def samples(self, examples: Sequence[Example]) -> RankingSamples:
    """`build_samples` of this protocol (rows: example indices)."""
    return build_samples(examples, self.movies, dedup=self.dedup)

  def label_ranks(self, samples: RankingSamples,
                  scores: np.ndarray) -> list[int]:
    """The 1-based rank of each label in the list, turn by turn in
    `samples` order (pure; labels missing from the list have none).

    Args:
      samples: this protocol's samples, `rows` pointing into `scores`.
      scores: float [U, C], C the candidates `candidate_replies(movies)`.

    Raises:
      ValueError: `scores` has not one column per movie, or a label's score
        is NaN.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(self.movies.titles):
      raise ValueError(f"scores of shape {scores.shape}, expected [rows, "
                       f"{len(self.movies.titles)}] (one column per movie)")
    return label_ranks(scores[list(samples.rows)], samples.labels,
                       samples.excluded)

  def measure_ranks(self, samples: RankingSamples,
                    ranks: Sequence[int]) -> dict[str, float]:
    """Recall@k from `label_ranks` (missing labels count as misses).

    Returns:
      `{p}/recall@k` (with its interval), `{p}/num_samples`,
      `{p}/num_turns`, `{p}/num_missing` and, when `dedup`,
      `{p}/num_dropped`, with p `rank` or `rank_dedup`.
    """
    prefix = self.prefix
    out = metrics_lib.recall_from_ranks(
        list(ranks) + [math.inf] * samples.num_missing, self.ks, prefix)
    out[f"{prefix}/num_turns"] = float(samples.num_turns)
    out[f"{prefix}/num_missing"] = float(samples.num_missing)
    if self.dedup:
      out[f"{prefix}/num_dropped"] = float(samples.num_dropped)
    return out

  def measure(self, samples: RankingSamples,
              scores: np.ndarray) -> dict[str, float]:
    """Recall@k of the samples, from the score matrix (pure):
    `measure_ranks(samples, label_ranks(samples, scores))`."""
    return self.measure_ranks(samples, self.label_ranks(samples, scores))

  def ranks_by_row(self, samples: RankingSamples,
                   ranks: Sequence[int]) -> dict[int, dict[str, int]]:
    """`label_ranks` per turn: `samples.rows[i]` -> {label title: rank}
    (for per-sample output files and paired tests)."""
    out, position = {}, 0
    for row, labels in zip(samples.rows, samples.labels):
      out[row] = {self.movies.titles[label]: int(rank) for label, rank
                  in zip(labels, ranks[position:position + len(labels)])}
      position += len(labels)
    return out


def make_protocols(movies: MovieList,
                   ks: Sequence[int] = DEFAULT_KS) -> dict[str, Protocol]:
  """`{"rank": standard, "rank_dedup": de-duplicated}` over `movies`, for
  `eval.evaluation.evaluate(ranking_fns=...)`."""
  return {"rank": Protocol(movies, dedup=False, ks=tuple(ks)),
          "rank_dedup": Protocol(movies, dedup=True, ks=tuple(ks))}


def distinct_rows(keys: Sequence[Any]) -> tuple[list[int], dict[int, int]]:
  """The first position of each distinct key, and position -> its row.

  `distinct_rows(["a", "b", "a"])` is `([0, 1], {0: 0, 1: 1, 2: 0})`.
  """
  first, row_of, seen = [], {}, {}
  for i, key in enumerate(keys):
    if key not in seen:
      seen[key] = len(first)
      first.append(i)
    row_of[i] = seen[key]
  return first, row_of


def evaluate(
    score_fn: CandidateScoreFn,
    examples: Sequence[Example],
    protocols: Mapping[str, Protocol],
    *,
    keys: Optional[Sequence[Any]] = None,
) -> dict[str, float]:
  """The protocols' metrics for a scorer: samples, one matrix, measures.

  Args:
    score_fn: `fn(examples, candidate_replies) -> [B, C]`, called once, on
      the turns any protocol ranks.
    examples: ReDial task examples.
    protocols: e.g. `make_protocols(movies)` (one movie list).
    keys: per example, what makes two turns' rows equal (e.g. their encoder
      tokens); default: every turn its own row.

  Returns:
    The protocols' metrics, merged.
  """
  samples = {name: p.samples(examples) for name, p in protocols.items()}
  movies = _one_movie_list(protocols)
  ranked = sorted({r for s in samples.values() for r in s.rows})
  key_of = keys if keys is not None else range(len(examples))
  first, row_of = distinct_rows([key_of[i] for i in ranked])
  candidates = candidate_replies(movies) if movies else []
  scores = np.asarray(score_fn([examples[ranked[i]] for i in first],
                               candidates)) if first else np.zeros(
                                   (0, len(candidates)))
  if scores.shape != (len(first), len(candidates)):
    raise ValueError(f"score_fn returned shape {scores.shape}, expected "
                     f"{(len(first), len(candidates))}")
  row_of = {ranked[i]: row for i, row in row_of.items()}
  out = {}
  for name, protocol in protocols.items():
    out.update(protocol.measure(samples[name].with_rows(row_of), scores))
  return out


def _one_movie_list(protocols: Mapping[str, Protocol]) -> Optional[MovieList]:
  """The protocols' shared movie list (one score matrix serves them all)."""
  movies = [p.movies for p in protocols.values()]
  if any(m is not movies[0] and m != movies[0] for m in movies):
    raise ValueError("the ranking protocols must share one movie list")
  return movies[0] if movies else None
