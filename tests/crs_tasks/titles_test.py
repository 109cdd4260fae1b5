"""Tests for crs_tasks/titles.py: every title form, written out by hand."""

import pytest

from crs_tasks import titles


def test_clean_text_unescapes_html_and_collapses_whitespace():
  assert titles.clean_text("a\t b\n\nc &lt;3 ") == "a b c <3"
  assert titles.clean_text("Tom &amp; Jerry &quot;X&quot;") == (
      'Tom & Jerry "X"')
  assert titles.clean_text("Police Academy  (1984) ") == (
      "Police Academy (1984)")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Matrix, The (1999)", "The Matrix (1999)"),
        ("Usual Suspects, The (1995)", "The Usual Suspects (1995)"),
        ("Beautiful Mind, A (2001)", "A Beautiful Mind (2001)"),
        ("American Tail, An (1986)", "An American Tail (1986)"),
        ("Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il)"
         " (1966)", "The Good, the Bad and the Ugly (1966)"),
        ("City of God (Cidade de Deus) (2002)", "City of God (2002)"),
        ("Seven (a.k.a. Se7en) (1995)", "Seven (1995)"),
        ("Avventura, L' (Adventure, The) (1960)", "L'Avventura (1960)"),
        ("Postman, The (Postino, Il) (1994)", "The Postman (1994)"),
        ("Boot, Das (Boat, The) (1981)", "Das Boot (1981)"),
        ("Vitelloni, I (1953)", "I Vitelloni (1953)"),
        ("Laberinto del fauno, El (2006)", "El Laberinto del fauno (2006)"),
        ("(500) Days of Summer (2009)", "(500) Days of Summer (2009)"),
        ("I, Robot (2004)", "I, Robot (2004)"),
        ("Black Mirror", "Black Mirror"),
        ("Stranger Things (2016-)", "Stranger Things (2016)"),
        ("  Heat   (1995) ", "Heat (1995)"),
    ],
)
def test_normalize_ml_title(raw, expected):
  assert titles.normalize_ml_title(raw) == expected


def test_parse_ml_title_keeps_aliases():
  name, aliases, year = titles.parse_ml_title(
      "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)"
  )
  assert (name, aliases, year) == (
      "Léon: The Professional", ("The Professional", "Léon"), "1994"
  )


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The Matrix  (1999)", ("The Matrix", "1999")),
        ("Police Academy  (1984)", ("Police Academy", "1984")),
        ("Matrix, The (1999)", ("The Matrix", "1999")),
        ("American Pie ", ("American Pie", None)),
        ("Tom &amp; Jerry (1992)", ("Tom & Jerry", "1992")),
        ("(500) Days of Summer", ("(500) Days of Summer", None)),
    ],
)
def test_split_title_gives_name_and_year(raw, expected):
  assert titles.split_title(raw) == expected


def test_format_title_writes_the_year_in_parentheses():
  assert titles.format_title("Heat", "1995") == "Heat (1995)"
  assert titles.format_title("Black Mirror", None) == "Black Mirror"


def test_match_key_is_case_accent_and_punctuation_insensitive():
  assert titles.match_key("Léon: The Professional") == "leon the professional"
  assert titles.match_key("Willy Wonka & the Chocolate Factory") == (
      "willy wonka and the chocolate factory"
  )
  assert titles.match_key("Schindler's List") == titles.match_key(
      "SCHINDLERS LIST")
