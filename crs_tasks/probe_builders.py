"""Builds the four T5-CR probe sets (Ram et al. 2023, Sec. 5) from MovieLens.

Every probe example is one *pair*: the same dialogue context with the correct
reply (`targets`) and with a reply naming a negative (`negative_targets`).
A model passes a pair when log p(targets) >= log p(negative_targets)
(`eval.probes.probe_lib`). Formats follow the authors' code
(googleinterns/e2e-convrec `data/build_probe_{1,2,3,4}_data.py`):

| probe            | context, after `[User] `        | correct reply      |
|------------------|---------------------------------|--------------------|
| `recommendation` | `Can you recommend me a movie   | `Sure, have you    |
|                  | like @ X @?`                    | seen @ Y @?`       |
| `attribute`      | `Can you recommend me a T       | `Sure, have you    |
|                  | movie?`                         | seen @ Y @?`       |
| `description`    | `What is your opinion on @ X    | review snippet     |
|                  | @?`                             |                    |
| `combination`    | `Can you recommend me a T movie | `Sure, have you    |
|                  | like @ X @?`                    | seen @ Y @?`       |

* recommendation: Y is one of X's `num_related` (10) most related probe
  movies by PMI^2 over liked-movie sequences; the negative is a random
  popular movie other than X and X's related movies. (The authors' prompt
  has no `?` after the title; we add it, as the paper writes it.)
* attribute: X has tag T; the negative is a random popular movie without T.
* description: a held-out review snippet (first `review_sentences`
  sentences) of X vs a held-out snippet of another (popular when possible)
  movie. "Held-out" = the reviews of the movies in the validation split of
  the `crs_ml_reviews` task (`split_keys` with the same fraction and seed),
  so no probe snippet was a training target.
* combination: Y is related to X (as above) and both have tag T; the
  negative is a random popular movie without T.

Model text. Like the training tasks, `inputs` is
`preprocessors.REDIAL_PREFIX` + the lower-cased context and `targets` /
`negative_targets` are lower-cased; the metadata (`query_movie`,
`positive_movie`, `negative_movie`, `tag`) uses the same casing as the text,
titles without the `@` markers.

Popularity and relatedness (`crs_tasks/movie_relatedness.py`). Sequences
are `movielens_sequences.liked_sequences` (rating >= 4.0; the latest
`max_len` liked movies of users with >= `min_liked` likes; the
`crs_ml_sequences` defaults). popularity(x) = number of sequences containing
x; co(x, y) = number containing both;
PMI^2(x, y) = log(p(x, y)^2 / (p(x) p(y))) = log(co^2 / (pop(x) pop(y)))
(the sequence count cancels). Related movies are ranked by PMI^2 (ties by
movieId); pairs that never co-occur are never related.

Thresholds scale with the data: the paper uses probe movies in >= 30
sequences and popular negatives in >= 138 (about the top 10%) on ml-25m. We
take quantiles of the popularity of movies seen in any sequence
(`np.quantile(..., method="lower")`): probe movies have popularity >=
max(`min_sequences`, q(`probe_quantile`=0.75)), popular movies >=
max(`min_sequences`, q(`popular_quantile`=0.9)). 0.9 is the paper's top
10%; 0.75 is our estimate of where 30 falls on ml-25m (not measured here).
`probe_min_sequences` / `popular_min_sequences` set absolute thresholds
instead (30 / 138 reproduce the paper on ml-25m).

Everything is deterministic for a `ProbeConfig.seed`: each probe draws from
`random.Random(f"{seed}/{probe}")` over movies in movieId order.
"""

import collections
import dataclasses
import json
import os
import random
from typing import Mapping, Optional, Sequence

from crs_tasks import movie_relatedness
from crs_tasks import movielens_data
from crs_tasks import movielens_reviews
from crs_tasks import movielens_sequences
from crs_tasks import movielens_tags
from crs_tasks import preprocessors
from crs_tasks import probe_io


_MOVIE_PROMPT = "[User] Can you recommend me a movie like @ {movie} @?"
_TAG_PROMPT = "[User] Can you recommend me a {tag} movie?"
_TAG_MOVIE_PROMPT = (
    "[User] Can you recommend me a {tag} movie like @ {movie} @?"
)
_OPINION_PROMPT = "[User] What is your opinion on @ {movie} @?"
_REPLY = "Sure, have you seen @ {movie} @?"


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
  """How the probe sets are built (defaults: the paper's, scaled).

  Attributes:
    min_rating: a rating >= this is a like.
    min_liked: users with fewer likes have no sequence.
    max_len: latest liked movies per sequence.
    probe_quantile: popularity quantile a probe movie must reach.
    popular_quantile: popularity quantile of popular (negative) movies.
    probe_min_sequences: absolute probe threshold (overrides the quantile).
    popular_min_sequences: absolute popular threshold (overrides it too).
    min_sequences: floor of both thresholds.
    num_related: related movies per query movie.
    max_common_tags: combination probe: tags per (X, Y), sampled.
    max_tags_per_movie: attribute probe: first tags per movie (None: all).
    review_sentences: sentences per review snippet.
    review_test_fraction: share of reviewed movies held out (must match the
      reviews task's split, 0.2).
    review_split_seed: seed of that split (the TFDS builder's `SEED`).
    max_reviews_per_movie: held-out reviews used per movie.
    max_pairs: keep this many pairs per probe (random subset, in order).
    prefix: task prefix of `inputs`.
    lowercase: lower-case the text and metadata.
    seed: seed of the negative draws and subsets.
  """

  min_rating: float = 4.0
  min_liked: int = 10
  max_len: int = 10
  probe_quantile: float = 0.75
  popular_quantile: float = 0.9
  probe_min_sequences: Optional[int] = None
  popular_min_sequences: Optional[int] = None
  min_sequences: int = 2
  num_related: int = 10
  max_common_tags: int = 5
  max_tags_per_movie: Optional[int] = None
  review_sentences: int = 4
  review_test_fraction: float = 0.2
  review_split_seed: int = 42
  max_reviews_per_movie: int = 5
  max_pairs: Optional[int] = None
  prefix: str = preprocessors.REDIAL_PREFIX
  lowercase: bool = True
  seed: int = 1



# The bundled samples (`crs_tasks/sample_data`) and the settings of the probe
# files built from them: the sample has 4 reviewed movies, so 2 are held out
# to give the description probe negatives; 100 pairs keep the files small.
SAMPLE_DATA_DIR = os.path.join(
    os.path.dirname(movielens_data.__file__), "sample_data"
)
SAMPLE_CONFIG = ProbeConfig(review_test_fraction=0.5, max_pairs=100)


# ================================ Examples ==================================


def make_example(
    config: ProbeConfig,
    probe: str,
    context: str,
    response: str,
    negative_response: str,
    *,
    query_movie: str = "",
    positive_movie: str = "",
    negative_movie: str = "",
    tag: str = "",
) -> dict:
  """One probe pair as model text plus metadata.

  Args:
    config: prefix and casing.
    probe: probe name.
    context: e.g. `"[User] Can you recommend me a movie like @ Heat (1995)
      @?"`.
    response: the correct reply, e.g. `"Sure, have you seen @ Ronin (1998)
      @?"`.
    negative_response: the reply with the negative.
    query_movie: title in the context ("" if none).
    positive_movie: title in the correct reply.
    negative_movie: title in the negative reply.
    tag: tag in the context ("" if none).

  Returns:
    With the defaults: `{"probe": probe, "pair_id": "", "inputs":
    "redial conversation: [user] can you recommend me a movie like @ heat
    (1995) @?", "targets": "sure, have you seen @ ronin (1998) @?", ...}`;
    `pair_id` is filled in by `build_probes`.
  """
  case = (lambda s: s.lower()) if config.lowercase else (lambda s: s)
  return {
      "probe": probe,
      "pair_id": "",
      "inputs": config.prefix + case(context),
      "targets": case(response),
      "negative_targets": case(negative_response),
      "query_movie": case(query_movie),
      "positive_movie": case(positive_movie),
      "negative_movie": case(negative_movie),
      "tag": case(tag),
  }


def _lower_tags(tags: Sequence[str], limit: Optional[int]) -> list[str]:
  """Case-insensitively unique, lower-cased tags, first `limit` kept."""
  out = []
  for tag in tags:
    key = " ".join(tag.lower().split())
    if key and key not in out and "@" not in key:
      out.append(key)
  return out if limit is None else out[:limit]


def _choice(rng: random.Random, pool: Sequence[int], stats, key: str):
  if not pool:
    stats[key] += 1
    return None
  return pool[rng.randrange(len(pool))]


@dataclasses.dataclass
class ProbeData:
  """Inputs of the builders (all plain Python).

  Attributes:
    movies: movieId -> `movielens_data.Movie`.
    sequences: liked-movie sequences (lists of movieIds).
    tags: movieId -> tags (genome or user tags, plus genres), may be empty.
    reviews: `(title, review)` pairs (`movielens_reviews.load_reviews`), or
      None when there is no reviews file.
  """

  movies: Mapping[int, movielens_data.Movie]
  sequences: Sequence[Sequence[int]]
  tags: Mapping[int, Sequence[str]] = dataclasses.field(default_factory=dict)
  reviews: Optional[Sequence[tuple[str, str]]] = None


class ProbeBuilder:
  """Builds the probe pairs of one `ProbeData` under one `ProbeConfig`."""

  def __init__(self, data: ProbeData, config: ProbeConfig = ProbeConfig()):
    self.data = data
    self.config = config
    self.stats = collections.Counter()
    self.cooc = movie_relatedness.cooccurrence(data.sequences)
    pop = self.cooc.popularity
    self.probe_threshold = movie_relatedness.popularity_threshold(
        pop,
        config.probe_quantile,
        absolute=config.probe_min_sequences,
        floor=config.min_sequences,
    )
    self.popular_threshold = movie_relatedness.popularity_threshold(
        pop,
        config.popular_quantile,
        absolute=config.popular_min_sequences,
        floor=config.min_sequences,
    )
    self.probe_movies = sorted(
        m for m, c in pop.items() if c >= self.probe_threshold
    )
    self.popular_movies = sorted(
        m for m, c in pop.items() if c >= self.popular_threshold
    )
    self.tags = {
        m: _lower_tags(t, config.max_tags_per_movie)
        for m, t in data.tags.items()
        if t
    }
    self.tags = {m: t for m, t in self.tags.items() if t}
    self._related = {}
    self._without = {}
    self.stats["sequences"] = self.cooc.num_sequences
    self.stats["movies_in_sequences"] = len(pop)
    self.stats["probe_threshold"] = self.probe_threshold
    self.stats["popular_threshold"] = self.popular_threshold
    self.stats["probe_movies"] = len(self.probe_movies)
    self.stats["popular_movies"] = len(self.popular_movies)

  def title(self, movie: int) -> str:
    return self.data.movies[movie].title

  def related(self, movie: int) -> list[int]:
    """`num_related` most related probe movies of `movie` (cached)."""
    if movie not in self._related:
      self._related[movie] = movie_relatedness.related_movies(
          self.cooc, movie, self.probe_movies, self.config.num_related
      )
    return self._related[movie]

  def _rng(self, probe: str) -> random.Random:
    return random.Random(f"{self.config.seed}/{probe}")

  def _without_tag(self, tag: str) -> list[int]:
    """Popular movies with tags, none of them `tag` (cached per tag)."""
    if tag not in self._without:
      self._without[tag] = [
          m
          for m in self.popular_movies
          if m in self.tags and tag not in self.tags[m]
      ]
    return self._without[tag]

  def recommendation(self) -> list[dict]:
    """Probe 1: related movie vs a random popular one."""
    rng, out = self._rng("recommendation"), []
    for x in self.probe_movies:
      related = self.related(x)
      excluded = set(related) | {x}
      pool = [m for m in self.popular_movies if m not in excluded]
      for y in related:
        z = _choice(rng, pool, self.stats, "recommendation/no_negative")
        if z is None:
          continue
        out.append(
            make_example(
                self.config,
                "recommendation",
                _MOVIE_PROMPT.format(movie=self.title(x)),
                _REPLY.format(movie=self.title(y)),
                _REPLY.format(movie=self.title(z)),
                query_movie=self.title(x),
                positive_movie=self.title(y),
                negative_movie=self.title(z),
            )
        )
    return out

  def attribute(self) -> list[dict]:
    """Probe 2: a movie with tag T vs a popular movie without T."""
    rng, out = self._rng("attribute"), []
    if not self.tags:
      self.stats["attribute/no_tags"] += 1
    for x in self.probe_movies:
      for tag in self.tags.get(x, ()):
        z = _choice(
            rng, self._without_tag(tag), self.stats, "attribute/no_negative"
        )
        if z is None:
          continue
        out.append(
            make_example(
                self.config,
                "attribute",
                _TAG_PROMPT.format(tag=tag),
                _REPLY.format(movie=self.title(x)),
                _REPLY.format(movie=self.title(z)),
                positive_movie=self.title(x),
                negative_movie=self.title(z),
                tag=tag,
            )
        )
    return out

  def combination(self) -> list[dict]:
    """Probe 4: tag + movie -> a related movie with the tag."""
    rng, out = self._rng("combination"), []
    for x in self.probe_movies:
      if x not in self.tags:
        continue
      for y in self.related(x):
        common = [t for t in self.tags[x] if t in self.tags.get(y, ())]
        if len(common) > self.config.max_common_tags:
          common = rng.sample(common, self.config.max_common_tags)
        for tag in common:
          z = _choice(
              rng, self._without_tag(tag), self.stats, "combination/no_negative"
          )
          if z is None:
            continue
          out.append(
              make_example(
                  self.config,
                  "combination",
                  _TAG_MOVIE_PROMPT.format(tag=tag, movie=self.title(x)),
                  _REPLY.format(movie=self.title(y)),
                  _REPLY.format(movie=self.title(z)),
                  query_movie=self.title(x),
                  positive_movie=self.title(y),
                  negative_movie=self.title(z),
                  tag=tag,
              )
          )
    return out

  def held_out_reviews(self) -> dict[str, list[str]]:
    """Title -> snippets of the held-out reviews (validation movies)."""
    config = self.config
    reviews = self.data.reviews or ()
    titles = {t for t, r in reviews if movielens_reviews.split_sentences(r)}
    _, held_out = movielens_data.split_keys(
        titles,
        test_fraction=config.review_test_fraction,
        seed=config.review_split_seed,
    )
    out = collections.defaultdict(list)
    for title, review in reviews:
      if title not in held_out:
        continue
      if len(out[title]) >= config.max_reviews_per_movie:
        continue
      sentences = movielens_reviews.split_sentences(review)
      if sentences:
        out[title].append(" ".join(sentences[: config.review_sentences]))
    return dict(sorted(out.items()))

  def description(self) -> list[dict]:
    """Probe 3: a held-out review snippet of X vs one of another movie."""
    if self.data.reviews is None:
      self.stats["description/no_reviews_file"] += 1
      return []
    rng, out = self._rng("description"), []
    snippets = self.held_out_reviews()
    pop = {self.title(m): c for m, c in self.cooc.popularity.items()}
    popular = [t for t in snippets if pop.get(t, 0) >= self.popular_threshold]
    for title, texts in snippets.items():
      pool = [t for t in popular if t != title]
      if not pool:
        self.stats["description/negative_not_popular"] += len(texts)
        pool = [t for t in snippets if t != title]
      for text in texts:
        if not pool:
          self.stats["description/no_negative"] += 1
          continue
        other = pool[rng.randrange(len(pool))]
        negative = snippets[other][rng.randrange(len(snippets[other]))]
        out.append(
            make_example(
                self.config,
                "description",
                _OPINION_PROMPT.format(movie=title),
                text,
                negative,
                query_movie=title,
                positive_movie=title,
                negative_movie=other,
            )
        )
    return out

  def build(self, probe: str) -> list[dict]:
    """Pairs of one probe, `max_pairs`-subsampled, with `pair_id`s."""
    if probe not in probe_io.PROBE_NAMES:
      raise ValueError(
          f"unknown probe {probe!r}; expected {probe_io.PROBE_NAMES}")
    examples = getattr(self, probe)()
    self.stats[f"{probe}/pairs_before_subsampling"] = len(examples)
    limit = self.config.max_pairs
    if limit is not None and len(examples) > limit:
      keep = sorted(
          self._rng(f"{probe}/subsample").sample(range(len(examples)), limit)
      )
      examples = [examples[i] for i in keep]
    for i, ex in enumerate(examples):
      ex["pair_id"] = f"{probe}/{i:06d}"
    self.stats[f"{probe}/pairs"] = len(examples)
    return examples


def in_format(example: Mapping[str, str], name: str) -> dict:
  """A dialogue-format pair reread in its MovieLens task's own format.

  The authors' `probe_1_sequences` beside `probe_1`: the same query,
  positive and negative movies (and tag), the same `pair_id`, written as the
  ML-sequences task (`recommendation_in_format`: `movielens sequence: @ x @`
  -> `@ y @`) or the ML-tags task (`attribute_in_format`: `movielens tags:
  t` -> `@ y @`) writes its examples (`preprocessors.ml_sequence_to_text`,
  `ml_tags_to_text`). A model that learned the relation in the auxiliary
  task but does not carry it into dialogue passes this and fails the
  dialogue-format pair.

  Args:
    example: a `recommendation` or `attribute` pair (`make_example`).
    name: the in-format probe name (`probe_io.IN_FORMAT_PROBES`).

  Returns:
    E.g. `{"probe": "recommendation_in_format", "pair_id":
    "recommendation/000003", "inputs": "movielens sequence: @ heat (1995)
    @", "targets": "@ ronin (1998) @", "negative_targets": "@ up (2009) @",
    ...}` (metadata copied).
  """
  if probe_io.IN_FORMAT_PROBES.get(name) != example["probe"]:
    raise ValueError(
        f"{name!r} rereads {probe_io.IN_FORMAT_PROBES.get(name)!r} pairs, "
        f"got a {example['probe']!r} pair")
  if name == "recommendation_in_format":
    inputs = preprocessors.ML_SEQUENCE_PREFIX + f"@ {example['query_movie']} @"
  else:
    inputs = preprocessors.ML_TAGS_PREFIX + example["tag"]
  return dict(
      example,
      probe=name,
      inputs=inputs,
      targets=f"@ {example['positive_movie']} @",
      negative_targets=f"@ {example['negative_movie']} @",
  )


# ================================ File I/O ==================================


def load_probe_data(
    movielens_dir: str,
    *,
    reviews_csv: Optional[str] = None,
    config: ProbeConfig = ProbeConfig(),
) -> ProbeData:
  """Reads MovieLens CSVs (and optionally reviews) for the builders.

  Args:
    movielens_dir: a folder with movies.csv and ratings.csv (or one level
      above it); tags from the tag genome (relevance > 0.8) when
      genome-*.csv exist, else from tags.csv; genres are added.
    reviews_csv: reviews in `movielens_reviews.REVIEWS_CSV_FORMAT`, or None.
    config: sequence settings (`min_rating`, `min_liked`, `max_len`).

  Returns:
    The `ProbeData`.
  """
  files = movielens_data.find_movielens_files(movielens_dir)
  if "ratings" not in files:
    raise FileNotFoundError(f"no ratings.csv beside {files['movies']}")
  movies = movielens_data.load_movies(files["movies"])
  sequences = movielens_sequences.liked_sequences(
      files["ratings"],
      min_rating=config.min_rating,
      min_liked=config.min_liked,
      max_len=config.max_len,
      known_movies=movies.keys(),
  )
  if "genome_scores" in files and "genome_tags" in files:
    tags = movielens_tags.load_genome_tags(
        files["genome_scores"], files["genome_tags"]
    )
  elif "tags" in files:
    tags = movielens_tags.load_user_tags(files["tags"])
  else:
    tags = {}
  tags = movielens_tags.movie_tags(movies, tags, add_genres=True)
  reviews = None
  if reviews_csv:
    reviews = movielens_reviews.load_reviews(reviews_csv)
  return ProbeData(movies, list(sequences.values()), tags, reviews)


def build_probe_files(
    data: ProbeData,
    output_dir: str,
    *,
    probes: Sequence[str] = probe_io.PROBE_NAMES,
    config: ProbeConfig = ProbeConfig(),
) -> dict:
  """Builds probes and writes `<output_dir>/<probe>.jsonl` + `stats.json`.

  Each built `recommendation` / `attribute` probe also gets its in-format
  twin (`in_format`, `<probe>_in_format.jsonl`, the same pairs).

  A probe with no pairs (e.g. `description` without reviews) writes no file
  and is reported in the stats (`<probe>/pairs` = 0).

  Args:
    data: the inputs.
    output_dir: destination folder.
    probes: which probes.
    config: builder settings.

  Returns:
    The stats dict written to `stats.json` (counts, thresholds, config).
  """
  builder = ProbeBuilder(data, config)
  built = {}
  for probe in probes:
    built[probe] = builder.build(probe)
  for name, source in probe_io.IN_FORMAT_PROBES.items():
    if source in built:
      built[name] = [in_format(ex, name) for ex in built[source]]
      builder.stats[f"{name}/pairs"] = len(built[name])
  for probe, examples in built.items():
    path = os.path.join(output_dir, f"{probe}.jsonl")
    if examples:
      probe_io.write_jsonl(path, examples, sort_keys=True)
    elif os.path.exists(path):
      os.remove(path)
  stats = {
      "counts": dict(sorted(builder.stats.items())),
      "config": dataclasses.asdict(config),
  }
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, "stats.json"), "w") as f:
    json.dump(stats, f, indent=2, sort_keys=True)
  return stats
