"""The chat's movie catalogue: finding the films a user types or a model writes.

- `Catalogue`: movie titles from ReDial's `movies_with_mentions.csv` and/or
  MovieLens' `movies.csv` (`load_catalogue`), looked up case-insensitively,
  with or without the year, exactly or fuzzily (`difflib`).
- `mark_titles`: rewrites the titles a user types as `@ Title (Year) @`, the
  way ReDial dialogues are written for the model.
- `recommended_titles`, `unknown_titles`, `readable_reply`: the titles of a
  generated reply, checked against the catalogue.

Titles in user text are found two ways: spans the user marks explicitly
(`@ the matrix @` or `"the matrix"`) are matched fuzzily; unmarked text is
scanned for exact catalogue names, accepted when the typed span carries the
year, is capitalised, has at least two content words, or is a lower-case
name whose words are not everyday English (`_COMMON_WORDS`: "alien" and
"the matrix" are films, "up" in "what's up" is not). A lower-case name
shared by films of several years is not guessed unless one of them has most
of the mentions (`_dominant`): otherwise a note lists the candidates
("heat" could be The Heat (2013), Heat (1996), ...: add the year). A title
is matched only with its own year: "The Sixth Sense (1994)" is not The
Sixth Sense (1999) but "not in the catalogue", and titles the model writes
that are not in the catalogue are shown as such, never listed as
recommendations.
"""

import csv
import dataclasses
import difflib
import re
from typing import Iterable, Optional, Sequence

from crs_runtime import errors
from crs_tasks import metrics
from crs_tasks import movielens_data
from crs_tasks import redial_movies
from crs_tasks import titles as titles_lib

_ARTICLES = ("the", "a", "an")
_STOPWORDS = frozenset(
    "a an the of and or in on at to it is i you me my we for with from by "
    "this that was be are as so but not no its his her he she they them "
    "like love liked loved saw seen watch watched movie movies film".split()
)
# Everyday words that are also film titles ("Up", "Her", "Big", "Home"):
# typed in lower case without a year they are taken as words.
_COMMON_WORDS = _STOPWORDS | frozenset(
    "up down out over off about after again all also am any back because "
    "been before being best better big both can come could day did do does "
    "done else even ever every first get gets go goes going gone good got "
    "great had has have here how if into just know last let little long "
    "look lot made make many may maybe more most much must need never new "
    "next nice now old once one only other our ours own people really right "
    "said same say see shall should show since some something still such "
    "sure take tell than thanks then there these thing things think those "
    "through time today too try two us very want way well were what when "
    "where which while who whom why will would yes yet your yours home love "
    "life man men woman women girl boy kids family friends fun hi hello hey "
    "okay ok sorry please night world war end start real true heart mother "
    "father her him his hers it its them us signs taken go crash rush run "
    "help cars seven nine ten".split()
)
_WORD_RE = re.compile(r"[A-Za-z0-9']+")
_MARKED_RE = re.compile(r"@\s*([^@]+?)\s*@|\"([^\"]+)\"")
_MAX_TITLE_WORDS = 12


@dataclasses.dataclass(frozen=True)
class Movie:
  """One catalogue entry.

  Attributes:
    name: title without the year, e.g. `The Matrix`.
    year: four-digit year string, or None when the source has none.
    popularity: tie-breaker between same-name films (ReDial mentions).
    aliases: other names it is found by (MovieLens alternative titles).
  """

  name: str
  year: Optional[str] = None
  popularity: int = 0
  aliases: tuple[str, ...] = ()

  @property
  def title(self) -> str:
    """`Name (Year)`, or `Name` without a year."""
    return f"{self.name} ({self.year})" if self.year else self.name


def name_key(name: str) -> str:
  """`titles.match_key` without a leading English article.

  `"The Matrix"`, `"matrix"` and `"Matrix, The"` all give `"matrix"`.

  Args:
    name: a title without its year.

  Returns:
    The key (may be empty).
  """
  words = titles_lib.match_key(titles_lib.flip_article(name)).split()
  if len(words) > 1 and words[0] in _ARTICLES:
    words = words[1:]
  return " ".join(words)


class Catalogue:
  """Movie titles indexed by name key and year."""

  def __init__(self, movies: Iterable[Movie]):
    self._by_key = {}
    for movie in movies:
      for key in {name_key(n) for n in (movie.name,) + movie.aliases}:
        if not key:
          continue
        same = self._by_key.setdefault(key, [])
        for i, other in enumerate(same):
          if other.year == movie.year:  # Same film from two sources.
            if movie.popularity > other.popularity:
              same[i] = movie
            break
        else:
          same.append(movie)
    for same in self._by_key.values():
      same.sort(key=lambda m: (-m.popularity, m.year or ""))
    self._keys = sorted(self._by_key)
    self._key_lengths = {len(k.split()) for k in self._keys}

  def __len__(self) -> int:
    return len({m for same in self._by_key.values() for m in same})

  def has_key(self, key: str) -> bool:
    """Whether some catalogue film has this `name_key`."""
    return key in self._by_key

  def candidates(self, typed: str) -> list[Movie]:
    """The films whose name matches `typed` exactly (any year), most
    mentioned first."""
    name, _ = titles_lib.split_title(typed.strip().strip("@").strip())
    return list(self._by_key.get(name_key(name), ()))

  def lookup(
      self, typed: str, *, fuzzy: bool = True, cutoff: float = 0.8,
      require_year: bool = False,
  ) -> Optional[Movie]:
    """Finds the film a typed title means.

    Args:
      typed: e.g. `"the matrix"`, `"Matrix (1999)"`, `"@ matrx @"`.
      fuzzy: fall back to the closest key (`difflib` ratio >= `cutoff`).
      cutoff: similarity threshold of the fuzzy match.
      require_year: without a year in `typed`, match only a film that has
        no year either (for titles the model writes, which carry one).

    Returns:
      The film with that name and year; without a year, the most popular
      film of that name; None when nothing matches, including a name whose
      films all have another year than the one typed (never a silent swap
      of 1994 for 1999).
    """
    name, year = titles_lib.split_title(typed.strip().strip("@").strip())
    if year is None:
      match = re.match(r"^(.*\S)\s+(\d{4})$", name)  # "the matrix 1999"
      if match and name_key(match.group(1)) in self._by_key:
        name, year = match.group(1), match.group(2)
    key = name_key(name)
    candidates = self._by_key.get(key)
    if not candidates and fuzzy and key:
      close = difflib.get_close_matches(key, self._keys, n=1, cutoff=cutoff)
      candidates = self._by_key[close[0]] if close else None
    if not candidates:
      return None
    if year is not None or require_year:
      for movie in candidates:
        if movie.year == year:
          return movie
      return None
    return candidates[0]

  def find_in_text(
      self, text: str, notes: Optional[list[str]] = None
  ) -> list[tuple[int, int, Movie]]:
    """Unmarked titles in free text, longest match first, left to right.

    A span is accepted when it is followed by its year (`1999` or `(1999)`),
    starts with a capital letter, has two or more content words, or is
    lower case without everyday words (`_COMMON_WORDS`). A lower-case span
    shared by films of several years, or followed by a year no film of that
    name has, is not matched; `notes` gets why, with the candidates.

    Args:
      text: user text without `@` markers.
      notes: receives one line per span left unmatched on purpose.

    Returns:
      `(start, end, movie)` character spans (the year included in the span).
    """
    notes = notes if notes is not None else []
    words = list(_WORD_RE.finditer(text))
    found, i = [], 0
    while i < len(words):
      for n in sorted(self._key_lengths | {1, 2}, reverse=True):
        span = words[i : i + n]
        if len(span) < n or n > _MAX_TITLE_WORDS:
          continue
        typed = text[span[0].start() : span[-1].end()]
        key = name_key(typed)
        if key not in self._by_key:
          continue
        end = span[-1].end()
        year_match = re.match(
            r"\s*(?:\(\s*(\d{4})\s*\)|(\d{4})\b)", text[end:]
        )
        typed_year = year_match and (year_match.group(1) or year_match.group(2))
        year = None
        same = self._by_key[key]
        if typed_year and any(m.year == typed_year for m in same):
          year, end = typed_year, end + year_match.end()
        content = [w for w in key.split() if w not in _STOPWORDS]
        lower_name = bool(content) and not any(
            w in _COMMON_WORDS for w in content)
        if year or typed[0].isupper() or len(content) >= 2 or lower_name:
          if typed_year and not year:  # "Heat (1996)": never another year.
            notes.append(
                f"{typed} ({typed_year}) is not in the catalogue (it has "
                f"{_list_titles(same)})")
            i += n
            break
          movie = self.lookup(f"{typed} ({year})" if year else typed,
                              fuzzy=False)
          if not year and not typed[0].isupper():
            dated = _dominant(same)
            if dated is None:
              notes.append(
                  f'"{typed}" could be {_list_titles(same)}: add the year, '
                  f'e.g. "{typed} {same[0].year}"')
              i += n
              break
            movie = dated
          found.append((span[0].start(), end, movie))
          i += n + (1 if year else 0)
          break
      else:
        i += 1
    return found


def _dominant(movies: Sequence[Movie], ratio: float = 4.0) -> Optional[Movie]:
  """The film a bare name means, or None when it is ambiguous.

  Entries without a year (ReDial lists "The Matrix" beside "The Matrix
  (1999)") do not count as other films. Among the dated films of the name
  (most mentioned first), the first is meant when it has at least `ratio`
  times the mentions of the next: "alien" is Alien (1979) (134 mentions,
  The Alien (2016) 6), "heat" is ambiguous (The Heat (2013) 90, Heat (1996)
  44, Heat (1995) 8).

  Args:
    movies: the films of one name key, most mentioned first.
    ratio: how dominant the first must be.

  Returns:
    The film, or None.
  """
  dated = [m for m in movies if m.year]
  if not dated:
    return movies[0] if len(movies) == 1 else None
  if len(dated) > 1 and dated[0].popularity < ratio * max(
      dated[1].popularity, 1):
    return None
  return dated[0]


def _list_titles(movies: Sequence[Movie], limit: int = 5) -> str:
  """`"Heat (1995), Heat (1986)"` (at most `limit`, then "...")."""
  titles = [m.title for m in movies[:limit]]
  return " or ".join([", ".join(titles[:-1]), titles[-1]] if len(titles) > 1
                     else titles) + (", ..." if len(movies) > limit else "")


def load_catalogue(paths: Sequence[str]) -> Catalogue:
  """Reads ReDial `movies_with_mentions.csv` and MovieLens `movies.csv` files.

  Args:
    paths: CSV files; the kind is told by the header (`movieName` for
      ReDial, read by `crs_tasks.redial_movies.read_movie_list`; `title`
      for MovieLens).

  Returns:
    One `Catalogue` over all files.

  Raises:
    errors.UserError: a file has neither header, or a bad row (a MovieLens
      row without a title; any ReDial error of `read_movie_list`); the
      message names the file and line.
  """
  movies = []
  for path in paths:
    with open(path, encoding="utf-8", newline="") as f:
      fields = next(csv.reader(f), None) or []
    if "movieName" in fields:
      for movie in redial_movies.read_movie_list(path):
        name, year = titles_lib.split_title(movie.name)
        movies.append(Movie(name, year, movie.mentions))
    elif "title" in fields:
      for line, row in movielens_data.read_csv(path, ("title",)):
        if not row.get("title"):
          raise errors.UserError("field 'title' is empty",
                                 where=f"{path}:{line}",
                                 fix="fix or delete that line")
        name, aliases, year = titles_lib.parse_ml_title(row["title"])
        movies.append(Movie(name, year, 0, aliases))
    else:
      raise errors.UserError(
          f"header has neither 'movieName' (ReDial) nor 'title' "
          f"(MovieLens): {fields}", where=f"{path}:1",
          fix="give ReDial's movies_with_mentions.csv or MovieLens' "
          "movies.csv")
  return Catalogue(movies)


def mark_titles(
    text: str, catalogue: Catalogue, notes: Optional[list[str]] = None
) -> tuple[str, list[Movie]]:
  """Rewrites the titles in user text as `@ Title (Year) @`.

  Example: `i loved The Matrix and "star wars"` ->
  `i loved @ The Matrix (1999) @ and @ Star Wars (1977) @`.
  Spans the user marked with `@` but that match nothing stay marked as typed
  (a marked title with a year no catalogue film of that name has is not
  swapped for another year).

  Args:
    text: one user turn.
    catalogue: the titles to match.
    notes: receives a line for each title left unmatched on purpose
      (ambiguous, or not in the catalogue with that year).

  Returns:
    The rewritten text and the films found, in order.
  """
  pieces, movies, pos = [], [], 0
  notes = notes if notes is not None else []

  def unmarked(chunk):
    out, last = [], 0
    for start, end, movie in catalogue.find_in_text(chunk, notes):
      out += [chunk[last:start], f"@ {movie.title} @"]
      movies.append(movie)
      last = end
    return "".join(out + [chunk[last:]])

  for match in _MARKED_RE.finditer(text):
    pieces.append(unmarked(text[pos : match.start()]))
    typed = match.group(1) or match.group(2)
    movie = catalogue.lookup(typed)
    if (movie is None and titles_lib.split_title(typed)[1]
        and catalogue.candidates(typed)):
      notes.append(f"{' '.join(typed.split())} is not in the catalogue (it "
                   f"has {_list_titles(catalogue.candidates(typed))})")
    if movie is not None:
      pieces.append(f"@ {movie.title} @")
      movies.append(movie)
    elif match.group(1) is not None:
      pieces.append(f"@ {' '.join(typed.split())} @")
    else:
      pieces.append(match.group(0))
    pos = match.end()
  pieces.append(unmarked(text[pos:]))
  return " ".join("".join(pieces).split()), movies


def recommended_titles(reply: str, catalogue: Catalogue) -> list[str]:
  """Catalogue films the model recommends, in the catalogue's spelling.

  Args:
    reply: generated text, e.g. `"try @ heat (1995) @!"`.
    catalogue: the films that can be recommended (exact name and year).

  Returns:
    E.g. `["Heat (1995)"]`, without duplicates. Titles outside the catalogue
    (`unknown_titles`), or with another year, are never listed.
  """
  titles = []
  for raw in metrics.extract_titles(reply):
    movie = catalogue.lookup(raw, fuzzy=False, require_year=True)
    if movie is not None and movie.title not in titles:
      titles.append(movie.title)
  return titles


def unknown_titles(reply: str, catalogue: Catalogue) -> list[str]:
  """Titles in `@ ... @` of the reply that are not catalogue films.

  Args:
    reply: generated text, e.g. `"try @ the a classics (1983) @"`.
    catalogue: the known films (exact name and year).

  Returns:
    The titles as generated, e.g. `["the a classics (1983)"]`.
  """
  titles = []
  for raw in metrics.extract_titles(reply):
    if (catalogue.lookup(raw, fuzzy=False, require_year=True) is None
        and raw not in titles):
      titles.append(raw)
  return titles


def readable_reply(reply: str, catalogue: Catalogue) -> str:
  """The reply with each `@ title @` replaced by the catalogue title (same
  name and year); other titles are shown as generated."""

  def restore(match):
    movie = catalogue.lookup(match.group(1), fuzzy=False, require_year=True)
    return movie.title if movie else match.group(1)

  return re.sub(r"@\s*([^@]+?)\s*@", restore, reply)
