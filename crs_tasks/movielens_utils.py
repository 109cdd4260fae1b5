"""Pure-python MovieLens helpers: titles, ReDial matching and example builders.

Everything here is plain Python over CSV files, so the TFDS builder
(`crs_tasks/tfds_builders/movielens.py`) can do its cross-example joins
offline and the seqio preprocessors stay per-example.

Titles. MovieLens writes `"Matrix, The (1999)"` and alternative titles in
parentheses before the year (`"City of God (Cidade de Deus) (2002)"`,
`"Seven (a.k.a. Se7en) (1995)"`). We display every movie as ReDial does,
`"Title (Year)"` with single spaces:

* a trailing article after a comma is moved to the front, for English
  (`The`, `A`, `An`) and common foreign articles (`ARTICLES`); an elided
  article keeps no space (`"Avventura, L' (1960)"` -> `"L'Avventura (1960)"`);
* alternative titles are dropped from the displayed title but kept as aliases
  for matching (`"City of God (2002)"`, alias `"Cidade de Deus (2002)"`);
* titles without a year stay bare (`"Black Mirror"`).

Matching (`TitleMatcher`) compares `match_key(name)` (accents folded,
case-insensitive, `&` read as `and`, punctuation ignored) plus the year:
first the exact year, then a year off by one; a ReDial title without a year
matches only a name that is unique in MovieLens.

Example builders (all deterministic for a given `seed`):

* `build_sequence_examples`: liked (rating >= 4.0) movies per user, users with
  >= 10 of them, the latest 10 by timestamp shuffled, every prefix -> the next
  movie, popular targets down-sampled with probability
  `min(1, sqrt(t / freq))`.
* `build_tag_examples`: random subsets of a movie's tags (tag genome with
  relevance > 0.8 when present, else user tags; plus genres).
* `build_review_examples`: a movie and the preceding sentences of a review ->
  the next sentence, at most 5 reviews per movie (`REVIEWS_CSV_FORMAT`).

To extend: add a loader that returns plain dicts and a builder that returns
lists of feature dicts, then expose it through a TFDS config.
"""

import collections
import csv
import dataclasses
import heapq
import html
import math
import os
import random
import re
import unicodedata
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

# Trailing articles moved to the front. Elided forms (ending in an
# apostrophe) attach to the next word without a space.
ARTICLES = (
    # English
    "The", "A", "An",
    # French / Italian
    "Le", "La", "Les", "L'", "Il", "Lo", "Gli", "I", "Un", "Une", "Una",
    "Uno",
    # German
    "Der", "Die", "Das", "Ein", "Eine",
    # Spanish / Portuguese
    "El", "Los", "Las", "O", "Os", "As",
    # Dutch / Scandinavian
    "De", "Het", "Een", "Den", "Det", "En", "Ett",
)
_ARTICLE_BY_LOWER = {a.lower(): a for a in ARTICLES}

_YEAR_RE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
_TRAILING_PAREN_RE = re.compile(r"\s*\(([^()]*)\)\s*$")
_AKA_RE = re.compile(r"^(?:a\.k\.a\.|aka)\s+", re.IGNORECASE)
_TRAILING_ARTICLE_RE = re.compile(r"^(.*\S),\s*(\S+)$")
_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+")

GENRES_NONE = "(no genres listed)"

REVIEWS_CSV_FORMAT = """\
Reviews input format (one review per row):
  * UTF-8 CSV (RFC 4180 quoting, `csv` module dialect "excel") with a header
    row naming at least the columns `title` and `review`; other columns are
    ignored.
  * `title`: the movie as "Title (Year)" (ReDial form, e.g. "The Matrix
    (1999)"); MovieLens forms such as "Matrix, The (1999)" are accepted and
    normalized with `normalize_ml_title`.
  * `review`: the review text in plain English; sentences end in . ! or ?
    followed by whitespace. Newlines inside a quoted field are allowed.
  * Rows with an empty title or review are skipped and counted; a missing
    column is an error naming the file.
"""


# ================================== Titles ==================================


def clean_text(text: str) -> str:
  """Unescapes HTML entities and collapses whitespace.

  Args:
    text: raw text, e.g. `"Heat  (1995) "` or `"Tom &amp; Jerry"`.

  Returns:
    `"Heat (1995)"`, `"Tom & Jerry"`.
  """
  return " ".join(html.unescape(text).split())


def flip_article(name: str) -> str:
  """Moves a trailing article to the front of a MovieLens title.

  Args:
    name: a title without year, e.g. `"Matrix, The"` or `"Avventura, L'"`.

  Returns:
    `"The Matrix"`, `"L'Avventura"`; names without a trailing article are
    returned unchanged (`"I, Robot"`).
  """
  match = _TRAILING_ARTICLE_RE.match(name)
  if not match:
    return name
  article = _ARTICLE_BY_LOWER.get(match.group(2).lower())
  if article is None:
    return name
  article = match.group(2)  # Keep the source's casing.
  if article.endswith("'"):
    return article + match.group(1)
  return f"{article} {match.group(1)}"


def parse_ml_title(raw: str) -> tuple[str, tuple[str, ...], Optional[str]]:
  """Splits a MovieLens title into name, alternative names and year.

  Args:
    raw: e.g. `"City of Lost Children, The (Cité des enfants perdus, La)
      (1995)"`.

  Returns:
    `(name, aliases, year)` with articles moved to the front:
    `("The City of Lost Children", ("La Cité des enfants perdus",), "1995")`.
    `year` is None when the title has none.
  """
  text = clean_text(raw)
  year = None
  match = _YEAR_RE.search(text)
  if match and match.start() > 0:
    year = match.group(1)
    text = text[: match.start()].rstrip()
  aliases = []
  while True:
    paren = _TRAILING_PAREN_RE.search(text)
    # Keep a parenthesis that is the whole title or starts it ("(500) Days").
    if not paren or paren.start() == 0:
      break
    aliases.append(_AKA_RE.sub("", paren.group(1)).strip())
    text = text[: paren.start()].rstrip()
  aliases.reverse()
  name = flip_article(text)
  aliases = tuple(flip_article(a) for a in aliases if a)
  return name, aliases, year


def format_title(name: str, year: Optional[str]) -> str:
  """Returns the ReDial form `"Name (Year)"`, or `"Name"` without a year."""
  return f"{name} ({year})" if year else name


def normalize_ml_title(raw: str) -> str:
  """Returns a MovieLens title in ReDial form.

  Args:
    raw: e.g. `"Matrix, The (1999)"`, `"City of God (Cidade de Deus)
      (2002)"`.

  Returns:
    `"The Matrix (1999)"`, `"City of God (2002)"`.
  """
  name, _, year = parse_ml_title(raw)
  return format_title(name, year)


def split_redial_title(raw: str) -> tuple[str, Optional[str]]:
  """Splits a ReDial title into `(name, year)`; year is None when absent."""
  text = clean_text(raw)
  match = _YEAR_RE.search(text)
  if match and match.start() > 0:
    return flip_article(text[: match.start()].rstrip()), match.group(1)
  return flip_article(text), None


def match_key(name: str) -> str:
  """Case-, accent- and punctuation-insensitive key of a title name.

  Args:
    name: e.g. `"Léon: The Professional"`, `"Willy Wonka & the Chocolate
      Factory"`.

  Returns:
    `"leon the professional"`, `"willy wonka and the chocolate factory"`.
  """
  text = unicodedata.normalize("NFKD", clean_text(name))
  text = "".join(c for c in text if not unicodedata.combining(c)).lower()
  text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
  text = re.sub(r"[^0-9a-z]+", " ", text)
  return " ".join(text.split())


# ================================ CSV input =================================


def read_csv(
    path: str, required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields `(line_number, row)` of a UTF-8 CSV file with a header.

  Args:
    path: the CSV file.
    required: column names that must be in the header.

  Yields:
    The 1-based physical line where each row starts, and the row as a dict.

  Raises:
    ValueError: naming the file when a required column is missing.
  """
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
      raise ValueError(
          f"{path}:1: missing column(s) {missing}; header is "
          f"{reader.fieldnames}"
      )
    line = reader.line_num + 1
    for row in reader:
      yield line, row
      line = reader.line_num + 1


def _parse(
    row: Mapping[str, str],
    field: str,
    conv: Callable[[str], object],
    path: str,
    line: int,
):
  """Converts `row[field]` with `conv`, naming file, line and field on error."""
  value = row.get(field)
  try:
    return conv(value)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"{path}:{line}: field {field!r}: cannot parse {value!r} ({e})"
    ) from None


@dataclasses.dataclass(frozen=True)
class Movie:
  """One MovieLens movie.

  Attributes:
    movie_id: MovieLens `movieId`.
    title: ReDial-form display title, e.g. `"The Matrix (1999)"`.
    name: the title without year, e.g. `"The Matrix"`.
    year: the year as a string, or None.
    aliases: alternative names (articles in front, no year).
    genres: MovieLens genres, without `"(no genres listed)"`.
  """

  movie_id: int
  title: str
  name: str
  year: Optional[str]
  aliases: tuple[str, ...] = ()
  genres: tuple[str, ...] = ()


def load_movies(path: str) -> dict[int, Movie]:
  """Reads MovieLens `movies.csv` (`movieId,title,genres`).

  Args:
    path: the movies.csv file.

  Returns:
    Mapping movieId -> `Movie`, in file order.

  Raises:
    ValueError: on a bad or duplicate movieId (naming file and line).
  """
  movies = {}
  for line, row in read_csv(path, ("movieId", "title", "genres")):
    movie_id = _parse(row, "movieId", int, path, line)
    if movie_id in movies:
      raise ValueError(f"{path}:{line}: field 'movieId': duplicate {movie_id}")
    name, aliases, year = parse_ml_title(row["title"] or "")
    if not name:
      raise ValueError(f"{path}:{line}: field 'title': empty")
    genres = tuple(
        g for g in (row["genres"] or "").split("|") if g and g != GENRES_NONE
    )
    movies[movie_id] = Movie(
        movie_id, format_title(name, year), name, year, aliases, genres
    )
  return movies


# ============================ ReDial <-> MovieLens ===========================


@dataclasses.dataclass(frozen=True)
class Match:
  """Result of matching one ReDial title: `movie_id` is None when unmatched.

  `how` is one of `"exact"`, `"year+-1"`, `"no_year_unique"`, `"none"`,
  `"ambiguous"`.
  """

  movie_id: Optional[int]
  how: str


class TitleMatcher:
  """Matches ReDial `"Title (Year)"` strings to MovieLens movies.

  Primary names win over aliases; among equal candidates the smallest
  movieId wins, so results are deterministic.
  """

  def __init__(self, movies: Mapping[int, Movie]):
    self._by_key_year = {}
    self._by_key = collections.defaultdict(set)
    for is_alias in (False, True):
      for movie in sorted(movies.values(), key=lambda m: m.movie_id):
        names = movie.aliases if is_alias else (movie.name,)
        for name in names:
          key = match_key(name)
          if not key:
            continue
          self._by_key_year.setdefault((key, movie.year), movie.movie_id)
          if not is_alias:
            self._by_key[key].add(movie.movie_id)

  def match(self, redial_title: str) -> Match:
    """Matches one ReDial title.

    Args:
      redial_title: e.g. `"The Matrix  (1999)"`, `"Lilo & Stitch"`.

    Returns:
      A `Match`.
    """
    name, year = split_redial_title(redial_title)
    key = match_key(name)
    if year is not None:
      found = self._by_key_year.get((key, year))
      if found is not None:
        return Match(found, "exact")
      for other in (int(year) - 1, int(year) + 1):
        found = self._by_key_year.get((key, str(other)))
        if found is not None:
          return Match(found, "year+-1")
      return Match(None, "none")
    candidates = self._by_key.get(key, set())
    if len(candidates) == 1:
      return Match(next(iter(candidates)), "no_year_unique")
    return Match(None, "ambiguous" if candidates else "none")


def load_redial_movies(path: str) -> dict[str, str]:
  """Reads ReDial `movies_with_mentions.csv` -> {movieId: cleaned title}."""
  out = {}
  for line, row in read_csv(path, ("movieId", "movieName")):
    movie_id = (row["movieId"] or "").strip()
    if not movie_id:
      raise ValueError(f"{path}:{line}: field 'movieId': empty")
    out[movie_id] = clean_text(row["movieName"] or "")
  return out


def match_redial_to_movielens(
    redial_titles: Mapping[str, str], movies: Mapping[int, Movie]
) -> tuple[dict[str, int], collections.Counter]:
  """Matches every ReDial movie to MovieLens.

  Args:
    redial_titles: ReDial movieId -> title (`load_redial_movies`).
    movies: MovieLens movies (`load_movies`).

  Returns:
    `(matches, counts)`: ReDial movieId -> MovieLens movieId for the matched
    ones, and a Counter of `Match.how` values (plus `"total"`).
  """
  matcher = TitleMatcher(movies)
  matches, counts = {}, collections.Counter()
  for redial_id, title in redial_titles.items():
    result = matcher.match(title)
    counts[result.how] += 1
    counts["total"] += 1
    if result.movie_id is not None:
      matches[redial_id] = result.movie_id
  return matches, counts


# ================================ Splitting =================================


def split_keys(
    keys: Iterable, *, test_fraction: float, seed: int
) -> tuple[set, set]:
  """Splits keys (users, movies) into train/test sets, reproducibly.

  The sorted keys are shuffled with `random.Random(seed)` and the first
  `round(test_fraction * n)` go to test.

  Args:
    keys: hashable, sortable keys.
    test_fraction: share of keys in the test split, in [0, 1].
    seed: shuffle seed.

  Returns:
    `(train_keys, test_keys)`.
  """
  if not 0.0 <= test_fraction <= 1.0:
    raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
  ordered = sorted(set(keys))
  random.Random(seed).shuffle(ordered)
  n_test = int(round(test_fraction * len(ordered)))
  return set(ordered[n_test:]), set(ordered[:n_test])


# ================================ Sequences =================================


def liked_sequences(
    ratings_path: str,
    *,
    min_rating: float = 4.0,
    min_liked: int = 10,
    max_len: int = 10,
    known_movies: Optional[Iterable[int]] = None,
    stats: Optional[collections.Counter] = None,
) -> dict[int, list[int]]:
  """Latest liked movies of each user, oldest first (streams ratings.csv).

  Args:
    ratings_path: MovieLens `ratings.csv` (`userId,movieId,rating,timestamp`).
    min_rating: a rating >= this is a "like".
    min_liked: users with fewer liked movies are dropped.
    max_len: how many of the latest liked movies to keep per user.
    known_movies: if given, ratings of other movies are skipped and counted
      in `stats["ratings_unknown_movie"]`.
    stats: optional Counter to add counts to.

  Returns:
    userId -> movieIds of the `max_len` latest liked movies sorted by
    (timestamp, movieId), for users with >= `min_liked` liked movies.

  Raises:
    ValueError: naming file, line and field on an unparsable value.
  """
  stats = stats if stats is not None else collections.Counter()
  known = set(known_movies) if known_movies is not None else None
  latest = collections.defaultdict(list)  # user -> min-heap (ts, movie)
  n_liked = collections.Counter()
  cols = ("userId", "movieId", "rating", "timestamp")
  for line, row in read_csv(ratings_path, cols):
    rating = _parse(row, "rating", float, ratings_path, line)
    stats["ratings"] += 1
    if rating < min_rating:
      continue
    movie = _parse(row, "movieId", int, ratings_path, line)
    if known is not None and movie not in known:
      stats["ratings_unknown_movie"] += 1
      continue
    user = _parse(row, "userId", int, ratings_path, line)
    stamp = _parse(row, "timestamp", int, ratings_path, line)
    n_liked[user] += 1
    heap = latest[user]
    heapq.heappush(heap, (stamp, movie))
    if len(heap) > max_len:
      heapq.heappop(heap)
  out = {}
  for user in sorted(latest):
    if n_liked[user] >= min_liked:
      out[user] = [movie for _, movie in sorted(latest[user])]
  stats["users_with_likes"] += len(latest)
  stats["users_kept"] += len(out)
  return out


def keep_probability(freq: float, t: float) -> float:
  """Down-sampling keep probability `min(1, sqrt(t / freq))`.

  Args:
    freq: the target's share of all examples, in (0, 1].
    t: threshold share; targets rarer than `t` are always kept.

  Returns:
    The probability of keeping an example with this target.
  """
  if freq <= 0:
    raise ValueError(f"freq must be > 0, got {freq}")
  return min(1.0, math.sqrt(t / freq))


def downsample_popular(
    examples: Sequence[dict], *, key: str, t: Optional[float], seed: int
) -> list[dict]:
  """Drops examples with popular targets (word2vec-style sub-sampling).

  Each example is kept when `random.Random(seed).random()` (one draw per
  example, in order) is below `keep_probability(freq, t)`, where `freq` is
  the share of `examples` whose `example[key]` equals this one's.

  Args:
    examples: feature dicts.
    key: the target field.
    t: threshold share; None keeps everything.
    seed: draw seed.

  Returns:
    The kept examples, in order.
  """
  if t is None or not examples:
    return list(examples)
  counts = collections.Counter(ex[key] for ex in examples)
  n = len(examples)
  rng = random.Random(seed)
  return [
      ex
      for ex in examples
      if rng.random() < keep_probability(counts[ex[key]] / n, t)
  ]


def sequence_examples(
    user_id: int, movie_ids: Sequence[int], titles: Mapping[int, str]
) -> list[dict]:
  """Every prefix of a user's sequence -> the next movie.

  Args:
    user_id: MovieLens userId.
    movie_ids: the user's movies in sequence order.
    titles: movieId -> display title.

  Returns:
    For `movie_ids=[1, 2, 3]`: `[{"user_id": u, "movies": [t1], "target":
    t2}, {"user_id": u, "movies": [t1, t2], "target": t3}]`.
  """
  names = [titles[m] for m in movie_ids]
  return [
      {"user_id": user_id, "movies": names[:i], "target": names[i]}
      for i in range(1, len(names))
  ]


def build_sequence_examples(
    movies: Mapping[int, Movie],
    ratings_path: str,
    *,
    min_rating: float = 4.0,
    min_liked: int = 10,
    max_len: int = 10,
    shuffle: bool = True,
    t: Optional[float] = 1e-3,
    test_fraction: float = 0.2,
    seed: int = 42,
    stats: Optional[collections.Counter] = None,
) -> dict[str, list[dict]]:
  """Builds the `movielens sequence` examples, split 80/20 by user.

  Steps: `liked_sequences`; shuffle each user's movies with
  `random.Random(f"{seed}/{user}")` if `shuffle`; `sequence_examples`;
  `downsample_popular` over all examples (frequencies over both splits);
  `split_keys` by user.

  Args:
    movies: MovieLens movies; ratings of other movies are skipped.
    ratings_path: ratings.csv.
    min_rating: like threshold.
    min_liked: minimum liked movies per user.
    max_len: latest liked movies kept per user (examples per user is
      `max_len - 1` before down-sampling).
    shuffle: shuffle each user's kept movies.
    t: down-sampling threshold share (None: no down-sampling).
    test_fraction: share of users in "validation".
    seed: seed of the shuffles, down-sampling and split.
    stats: optional Counter to add counts to.

  Returns:
    {"train": [...], "validation": [...]}, feature dicts with `user_id`,
    `movies` (titles) and `target` (title).
  """
  stats = stats if stats is not None else collections.Counter()
  sequences = liked_sequences(
      ratings_path,
      min_rating=min_rating,
      min_liked=min_liked,
      max_len=max_len,
      known_movies=movies.keys(),
      stats=stats,
  )
  titles = {m.movie_id: m.title for m in movies.values()}
  examples = []
  for user, seq in sequences.items():
    if shuffle:
      seq = list(seq)
      random.Random(f"{seed}/{user}").shuffle(seq)
    examples.extend(sequence_examples(user, seq, titles))
  stats["sequence_examples_before_downsampling"] += len(examples)
  examples = downsample_popular(examples, key="target", t=t, seed=seed)
  _, test_users = split_keys(
      sequences.keys(), test_fraction=test_fraction, seed=seed
  )
  return {
      "train": [ex for ex in examples if ex["user_id"] not in test_users],
      "validation": [ex for ex in examples if ex["user_id"] in test_users],
  }


# =================================== Tags ===================================


def load_genome_tags(
    scores_path: str, tags_path: str, *, min_relevance: float = 0.8
) -> dict[int, list[str]]:
  """Tag-genome tags of each movie with relevance > `min_relevance`.

  Args:
    scores_path: `genome-scores.csv` (`movieId,tagId,relevance`).
    tags_path: `genome-tags.csv` (`tagId,tag`).
    min_relevance: strict lower bound on relevance.

  Returns:
    movieId -> tags, most relevant first (ties by tag).
  """
  names = {}
  for line, row in read_csv(tags_path, ("tagId", "tag")):
    names[_parse(row, "tagId", int, tags_path, line)] = clean_text(row["tag"])
  scored = collections.defaultdict(list)
  for line, row in read_csv(scores_path, ("movieId", "tagId", "relevance")):
    relevance = _parse(row, "relevance", float, scores_path, line)
    if relevance <= min_relevance:
      continue
    tag_id = _parse(row, "tagId", int, scores_path, line)
    if tag_id not in names:
      raise ValueError(
          f"{scores_path}:{line}: field 'tagId': {tag_id} not in {tags_path}"
      )
    movie = _parse(row, "movieId", int, scores_path, line)
    scored[movie].append((-relevance, names[tag_id]))
  return {m: [tag for _, tag in sorted(v)] for m, v in scored.items()}


def load_user_tags(path: str) -> dict[int, list[str]]:
  """User tags of each movie from `tags.csv` (`userId,movieId,tag,...`).

  Tags are de-duplicated case-insensitively (keeping the first spelling) and
  ordered by how many times they were given, then by first appearance.

  Args:
    path: tags.csv.

  Returns:
    movieId -> tags.
  """
  counts = collections.defaultdict(collections.Counter)
  spelling = collections.defaultdict(dict)
  for line, row in read_csv(path, ("movieId", "tag")):
    movie = _parse(row, "movieId", int, path, line)
    tag = clean_text(row["tag"] or "")
    if not tag:
      continue
    key = tag.lower()
    spelling[movie].setdefault(key, tag)
    counts[movie][key] += 1
  out = {}
  for movie, counter in counts.items():
    order = list(spelling[movie])  # insertion order = first appearance
    keys = sorted(order, key=lambda k: (-counter[k], order.index(k)))
    out[movie] = [spelling[movie][k] for k in keys]
  return out


def movie_tags(
    movies: Mapping[int, Movie],
    tags: Mapping[int, Sequence[str]],
    *,
    add_genres: bool = True,
) -> dict[int, list[str]]:
  """Tags plus genres of each movie that has at least one tag.

  Args:
    movies: MovieLens movies (movies not here are skipped).
    tags: movieId -> tags (`load_genome_tags` or `load_user_tags`).
    add_genres: append the movie's genres not already among its tags.

  Returns:
    movieId -> tags, in movieId order.
  """
  out = {}
  for movie_id in sorted(tags):
    if movie_id not in movies or not tags[movie_id]:
      continue
    merged = list(tags[movie_id])
    if add_genres:
      seen = {t.lower() for t in merged}
      merged += [g for g in movies[movie_id].genres if g.lower() not in seen]
    out[movie_id] = merged
  return out


def tag_examples(
    movie_id: int,
    title: str,
    tags: Sequence[str],
    *,
    num_subsets: int,
    max_subset_size: int,
    seed: int,
) -> list[dict]:
  """Random tag subsets of one movie.

  Subset `i` has `rng.randint(1, min(len(tags), max_subset_size))` tags drawn
  with `rng.sample` from `rng = random.Random(f"{seed}/{movie_id}")`;
  duplicate subsets are dropped.

  Args:
    movie_id: MovieLens movieId.
    title: display title.
    tags: all tags of the movie.
    num_subsets: subsets to draw.
    max_subset_size: most tags per subset.
    seed: draw seed.

  Returns:
    `[{"movie_id", "title", "tags" (the subset), "all_tags",
    "subset_index"}]`; `subset_index` 0 exists for every movie.
  """
  rng = random.Random(f"{seed}/{movie_id}")
  out, seen = [], set()
  for _ in range(num_subsets):
    k = rng.randint(1, min(len(tags), max_subset_size))
    subset = rng.sample(list(tags), k)
    if tuple(subset) in seen:
      continue
    seen.add(tuple(subset))
    out.append({
        "movie_id": movie_id,
        "title": title,
        "tags": subset,
        "all_tags": list(tags),
        "subset_index": len(out),
    })
  return out


def build_tag_examples(
    movies: Mapping[int, Movie],
    tags: Mapping[int, Sequence[str]],
    *,
    add_genres: bool = True,
    num_subsets: int = 3,
    max_subset_size: int = 5,
    test_fraction: float = 0.2,
    seed: int = 42,
) -> dict[str, list[dict]]:
  """Builds the `movielens tags` examples, split 80/20 by movie.

  Args:
    movies: MovieLens movies.
    tags: movieId -> tags.
    add_genres: see `movie_tags`.
    num_subsets: see `tag_examples`.
    max_subset_size: see `tag_examples`.
    test_fraction: share of movies in "validation".
    seed: seed of the subsets and the split.

  Returns:
    {"train": [...], "validation": [...]} of `tag_examples` dicts.
  """
  merged = movie_tags(movies, tags, add_genres=add_genres)
  _, test_movies = split_keys(merged, test_fraction=test_fraction, seed=seed)
  splits = {"train": [], "validation": []}
  for movie_id, all_tags in merged.items():
    split = "validation" if movie_id in test_movies else "train"
    splits[split].extend(
        tag_examples(
            movie_id,
            movies[movie_id].title,
            all_tags,
            num_subsets=num_subsets,
            max_subset_size=max_subset_size,
            seed=seed,
        )
    )
  return splits


# ================================= Reviews ==================================


def split_sentences(text: str) -> list[str]:
  """Splits text after `.`, `!` or `?` (and closing quotes) plus whitespace.

  Args:
    text: e.g. `'Great film. I loved it! Would I watch again? Yes.'`.

  Returns:
    `["Great film.", "I loved it!", "Would I watch again?", "Yes."]`.
  """
  text = clean_text(text)
  return [s.strip() for s in _SENTENCE_END_RE.split(text) if s.strip()]


def load_reviews(
    path: str, *, stats: Optional[collections.Counter] = None
) -> list[tuple[str, str]]:
  """Reads a reviews CSV (see `REVIEWS_CSV_FORMAT`).

  Args:
    path: the CSV file.
    stats: optional Counter; empty rows are counted in
      `stats["reviews_skipped_empty"]`.

  Returns:
    `(title, review)` pairs in file order, titles in ReDial form.
  """
  stats = stats if stats is not None else collections.Counter()
  out = []
  for _, row in read_csv(path, ("title", "review")):
    title = normalize_ml_title(row["title"] or "")
    review = clean_text(row["review"] or "")
    if not title or not review:
      stats["reviews_skipped_empty"] += 1
      continue
    out.append((title, review))
  return out


def review_examples(
    reviews: Sequence[tuple[str, str]],
    *,
    max_reviews_per_movie: int = 5,
    max_context_sentences: Optional[int] = None,
) -> list[dict]:
  """Movie + preceding review sentences -> the next sentence.

  Args:
    reviews: `(title, review)` pairs; per movie, the first
      `max_reviews_per_movie` in order are used.
    max_context_sentences: keep only this many preceding sentences (None:
      all of them).

  Returns:
    One dict per sentence: `{"title", "context" (preceding sentences joined
    by a space, "" for the first), "target", "review_index",
    "sentence_index"}`. E.g. `("Up (2009)", "Sad. Then happy.")` gives
    `{"title": "Up (2009)", "context": "", "target": "Sad.", ...}` and
    `{"title": "Up (2009)", "context": "Sad.", "target": "Then happy.",
    ...}`.
  """
  per_movie = collections.Counter()
  out = []
  for title, review in reviews:
    if per_movie[title] >= max_reviews_per_movie:
      continue
    review_index = per_movie[title]
    per_movie[title] += 1
    sentences = split_sentences(review)
    for i, sentence in enumerate(sentences):
      start = 0 if max_context_sentences is None else max(
          0, i - max_context_sentences
      )
      out.append({
          "title": title,
          "context": " ".join(sentences[start:i]),
          "target": sentence,
          "review_index": review_index,
          "sentence_index": i,
      })
  return out


def build_review_examples(
    path: str,
    *,
    max_reviews_per_movie: int = 5,
    max_context_sentences: Optional[int] = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    stats: Optional[collections.Counter] = None,
) -> dict[str, list[dict]]:
  """Builds the `movielens review` examples, split 80/20 by movie title.

  Args:
    path: reviews CSV (`REVIEWS_CSV_FORMAT`).
    max_reviews_per_movie: see `review_examples`.
    max_context_sentences: see `review_examples`.
    test_fraction: share of movies in "validation".
    seed: split seed.
    stats: optional Counter to add counts to.

  Returns:
    {"train": [...], "validation": [...]} of `review_examples` dicts.
  """
  examples = review_examples(
      load_reviews(path, stats=stats),
      max_reviews_per_movie=max_reviews_per_movie,
      max_context_sentences=max_context_sentences,
  )
  _, test_titles = split_keys(
      {ex["title"] for ex in examples}, test_fraction=test_fraction, seed=seed
  )
  return {
      "train": [ex for ex in examples if ex["title"] not in test_titles],
      "validation": [ex for ex in examples if ex["title"] in test_titles],
  }


def find_movielens_files(root: str) -> dict[str, str]:
  """Finds MovieLens CSVs in `root` or one sub-directory below it.

  Args:
    root: e.g. a folder holding `ml-25m/` or `ml-latest-small/`, or one of
      those folders itself.

  Returns:
    Mapping of `movies`, `ratings`, `tags`, `genome_scores`, `genome_tags`
    to paths that exist (missing keys for absent files).

  Raises:
    FileNotFoundError: when no movies.csv is found.
  """
  names = {
      "movies": "movies.csv",
      "ratings": "ratings.csv",
      "tags": "tags.csv",
      "genome_scores": "genome-scores.csv",
      "genome_tags": "genome-tags.csv",
  }
  candidates = [root] + sorted(
      os.path.join(root, d)
      for d in (os.listdir(root) if os.path.isdir(root) else [])
      if os.path.isdir(os.path.join(root, d))
  )
  for folder in candidates:
    if os.path.exists(os.path.join(folder, "movies.csv")):
      return {
          key: os.path.join(folder, name)
          for key, name in names.items()
          if os.path.exists(os.path.join(folder, name))
      }
  raise FileNotFoundError(f"no movies.csv in {root} or its sub-directories")
