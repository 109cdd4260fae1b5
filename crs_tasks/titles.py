"""Movie titles: the one parser and normaliser of ReDial and MovieLens titles.

ReDial writes `"Title (Year)"`; MovieLens writes `"Matrix, The (1999)"`, with
alternative titles in parentheses before the year (`"City of God (Cidade de
Deus) (2002)"`, `"Seven (a.k.a. Se7en) (1995)"`). Every movie is displayed
the ReDial way, `"Title (Year)"` with single spaces:

* a trailing article after a comma is moved to the front, for English
  (`The`, `A`, `An`) and common foreign articles (`ARTICLES`); an elided
  article keeps no space (`"Avventura, L' (1960)"` -> `"L'Avventura (1960)"`);
* alternative titles are dropped from the displayed title but kept as aliases
  for matching (`"City of God (2002)"`, alias `"Cidade de Deus (2002)"`);
* titles without a year stay bare (`"Black Mirror"`).

`clean_text` is the one text cleaner of the project (HTML entities
unescaped, whitespace collapsed): ReDial messages, MovieLens tags and reviews
and every title go through it. (`crs_tasks.metrics.normalize_title` is not
a second cleaner but the metrics' comparison key, case and spacing, for
generated text that never passes through here.) `match_key` is the key
titles are compared by (accents folded, case-insensitive, `&` read as `and`,
punctuation ignored);
the ReDial<->MovieLens matcher (`movielens_matching`) and the chat catalogue
(`crs_chat/catalogue.py`) both use it.

To support another title form, extend `parse_ml_title` / `split_title` and
add its literal example to tests/crs_tasks/titles_test.py.
"""

import html
import re
import unicodedata
from typing import Optional

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


def split_title(raw: str) -> tuple[str, Optional[str]]:
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
