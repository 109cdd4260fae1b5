"""Oracle rows of the probes: scorers that know MovieLens's statistics.

A model can only be as good on a probe as the statistics it could learn
from its training data. Each oracle scores a pair's two replies from the
liked-movie sequences of the **training** users of the ML-sequences task
(`movielens_sequences.liked_sequences`, the 80% of users in its `train`
split: `split_keys(users, 0.2, seed=42)` as its TFDS builder), with the
probe's query movie x, correct movie y and negative z:

| oracle         | score of a reply naming m        | probes               |
|----------------|----------------------------------|----------------------|
| `task_conditi- | p(target = m | x in inputs) over | recommendation,      |
| onal`          | the task's training examples     | combination (+ their |
|                | (popular targets down-sampled):  | in-format twins)     |
|                | what a perfect model of the      |                      |
|                | ML-sequences task learns         |                      |
| `cooccurrence` | p(m | x) = co(x, m) / pop(x)     | same                 |
|                | over the liked sets              |                      |
| `pmi2`         | PMI^2(x, m) = log(co^2 / (pop(x) | same                 |
|                | pop(m))) (the probes' own        |                      |
|                | relatedness, over all users)     |                      |
| `popularity`   | pop(m) (sequences containing m)  | every probe with     |
|                |                                  | movie replies        |

A pair is won when the correct reply scores higher, lost when lower; a tie
(e.g. neither movie ever co-occurs with x) counts one half, the expected
score of a coin flip, and ties are reported. Titles are matched to
movieIds by their lower-cased MovieLens title (`probe_builders` writes
them so); a title shared by two movies takes the more popular one; a movie
absent from the training sequences has popularity 0.
"""

import collections
import json
import math
import os
from typing import Mapping, Optional, Sequence

from crs_tasks import movie_relatedness
from crs_tasks import movielens_data
from crs_tasks import movielens_sequences
from crs_tasks import probe_builders
from crs_tasks import probe_io
from eval import metrics as metrics_lib

ORACLES = ("task_conditional", "cooccurrence", "pmi2", "popularity")
ORACLES_FILE = "oracles.json"
# The ML-sequences task's user split (`tfds_builders.movielens.SEED`).
SEQUENCES_TEST_FRACTION = 0.2
SEQUENCES_SPLIT_SEED = 42
SEQUENCES_DOWNSAMPLE_T = 1e-3  # `crs_movielens/sequences_{small,full}`.


class OracleStats:
  """Training-side sequence statistics, looked up by lower-cased title."""

  def __init__(self, movies: Mapping[int, movielens_data.Movie],
               sequences: Sequence[Sequence[int]],
               task_examples: Sequence[Mapping] = ()):
    self.cooc = movie_relatedness.cooccurrence(sequences)
    # Lower-cased title -> examples with it in the inputs, and -> Counter of
    # their targets (the ML-sequences task's training examples).
    self.inputs_with = collections.Counter()
    self.target_after = collections.defaultdict(collections.Counter)
    for ex in task_examples:
      target = ex["target"].lower()
      for title in {t.lower() for t in ex["movies"]}:
        self.inputs_with[title] += 1
        self.target_after[title][target] += 1
    pop = self.cooc.popularity
    self.ids = {}
    for movie_id, movie in movies.items():
      key = movie.title.lower()
      if key not in self.ids or pop[movie_id] > pop[self.ids[key]]:
        self.ids[key] = movie_id

  def popularity(self, title: str) -> int:
    return self.cooc.popularity.get(self.ids.get(title, -1), 0)

  def co(self, x: str, y: str) -> int:
    x_id, y_id = self.ids.get(x, -1), self.ids.get(y, -1)
    return self.cooc.co.get(x_id, {}).get(y_id, 0)

  def score(self, oracle: str, query: str, movie: str) -> float:
    """The `oracle`'s score of a reply naming `movie` after `query`."""
    if oracle == "popularity":
      return float(self.popularity(movie))
    if oracle == "task_conditional":
      n = self.inputs_with[query]
      return self.target_after[query][movie] / n if n else 0.0
    pop_x = self.popularity(query)
    co = self.co(query, movie)
    if oracle == "cooccurrence":
      return co / pop_x if pop_x else 0.0
    if oracle == "pmi2":
      if co == 0:
        return -math.inf
      return movie_relatedness.pmi2(co, pop_x, self.popularity(movie))
    raise ValueError(f"unknown oracle {oracle!r}; expected {ORACLES}")


def load_training_stats(
    movielens_dir: str,
    config: probe_builders.ProbeConfig = probe_builders.ProbeConfig(),
) -> OracleStats:
  """`OracleStats` of the ML-sequences task's training users.

  Args:
    movielens_dir: a folder with movies.csv and ratings.csv (or above it).
    config: the sequence settings (`min_rating`, `min_liked`, `max_len`).
  """
  files = movielens_data.find_movielens_files(movielens_dir)
  movies = movielens_data.load_movies(files["movies"])
  task = movielens_sequences.build_sequence_examples(
      movies, files["ratings"], min_rating=config.min_rating,
      min_liked=config.min_liked, max_len=config.max_len,
      t=SEQUENCES_DOWNSAMPLE_T, test_fraction=SEQUENCES_TEST_FRACTION,
      seed=SEQUENCES_SPLIT_SEED)
  by_user = movielens_sequences.liked_sequences(
      files["ratings"], min_rating=config.min_rating,
      min_liked=config.min_liked, max_len=config.max_len,
      known_movies=movies.keys())
  _, test_users = movielens_data.split_keys(
      by_user.keys(), test_fraction=SEQUENCES_TEST_FRACTION,
      seed=SEQUENCES_SPLIT_SEED)
  return OracleStats(
      movies, [s for u, s in by_user.items() if u not in test_users],
      task["train"])


def applicable(examples: Sequence[Mapping[str, str]]) -> tuple[str, ...]:
  """Oracles that apply to a probe: those needing a query movie only when
  the pairs have one; none for pairs without movie replies."""
  if not examples or not all(ex.get("negative_movie") for ex in examples):
    return ()
  if all(ex.get("query_movie") for ex in examples):
    return ORACLES
  return ("popularity",)


def oracle_metrics(stats: OracleStats, examples: Sequence[Mapping[str, str]],
                   oracle: str, *, confidence: float = 0.95) -> dict:
  """Accuracy (ties one half), its Wilson interval, ties and pairs, in
  percent like the model probes."""
  wins = ties = 0
  for ex in examples:
    pos = stats.score(oracle, ex.get("query_movie", ""), ex["positive_movie"])
    neg = stats.score(oracle, ex.get("query_movie", ""), ex["negative_movie"])
    wins += pos > neg
    ties += pos == neg
  n = len(examples)
  credit = wins + ties / 2
  low, high = metrics_lib.wilson_interval(credit, n, confidence)
  return {"accuracy": 100.0 * credit / n, "ci_low": 100.0 * low,
          "ci_high": 100.0 * high, "ties": ties, "num_pairs": n}


def probe_oracles(probe_dir: str, stats: OracleStats,
                  names: Sequence[str] = probe_io.ALL_PROBE_NAMES) -> dict:
  """`{probe: {oracle: oracle_metrics}}` for every probe file in the dir,
  written to `<probe_dir>/oracles.json`."""
  out = collections.OrderedDict()
  for name in names:
    path = os.path.join(probe_dir, f"{name}.jsonl")
    if not os.path.exists(path):
      continue
    examples = probe_io.read_probe_jsonl(path)
    rows = {o: oracle_metrics(stats, examples, o)
            for o in applicable(examples)}
    if rows:
      out[name] = rows
  with open(os.path.join(probe_dir, ORACLES_FILE), "w") as f:
    json.dump(out, f, indent=2)
  return out


def read_oracles(probe_dir: Optional[str]) -> dict:
  """`<probe_dir>/oracles.json`, or {} when there is none."""
  if not probe_dir:
    return {}
  path = os.path.join(probe_dir, ORACLES_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)
