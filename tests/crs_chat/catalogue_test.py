"""Tests for crs_chat/catalogue.py: finding the films typed or generated.

The `catalogue` fixture (tests/eval/conftest.py) holds eight hand-picked
films: two Halloweens of different years, everyday-word titles ("Up",
"Heat"), an accent and a long title.
"""

import pytest

from crs_runtime import errors
from crs_chat import catalogue as catalogue_lib


def test_name_key_drops_a_leading_english_article():
  # Titles are split by crs_tasks.titles (tests/crs_tasks/titles_test.py).
  assert catalogue_lib.name_key("The Matrix") == "matrix"
  assert catalogue_lib.name_key("Matrix, The") == "matrix"
  assert catalogue_lib.name_key("Schindler's List!") == "schindlers list"


@pytest.mark.parametrize("typed,expected", [
    ("the matrix", "The Matrix (1999)"),
    ("MATRIX (1999)", "The Matrix (1999)"),
    ("@ the matrix 1999 @", "The Matrix (1999)"),
    ("the matrx", "The Matrix (1999)"),  # Fuzzy.
    ("halloween", "Halloween (2007)"),  # Most mentioned of the two.
    ("Halloween (1978)", "Halloween (1978)"),
    ("halloween 1978", "Halloween (1978)"),
    ("lord of the rings the two towers", (
        "The Lord of the Rings: The Two Towers (2002)")),
    ("completely unknown picture", None),
])
def test_lookup(catalogue, typed, expected):
  movie = catalogue.lookup(typed)
  assert (movie.title if movie else None) == expected


def test_lookup_without_fuzzy(catalogue):
  assert catalogue.lookup("the matrx", fuzzy=False) is None


@pytest.mark.parametrize("text,expected", [
    ('i loved The Matrix and "star wars"',
     "i loved @ The Matrix (1999) @ and @ Star Wars (1977) @"),
    ("i like star wars a lot", "i like @ Star Wars (1977) @ a lot"),
    # Unmarked single lower-case words are not films; with a year they are.
    ("what's up? it was heat 1995 for me",
     "what's up? it was @ Heat (1995) @ for me"),
    ("it was Heat (1995) and Up", "it was @ Heat (1995) @ and @ Up (2009) @"),
    ("seen @ the matirx @? or @ my own film @",
     "seen @ The Matrix (1999) @? or @ my own film @"),
    ('he said "hello there"', 'he said "hello there"'),
    ("no films here", "no films here"),
])
def test_mark_titles(catalogue, text, expected):
  assert catalogue_lib.mark_titles(text, catalogue)[0] == expected


def test_mark_titles_returns_movies_in_order(catalogue):
  _, movies = catalogue_lib.mark_titles('"up" then the matrix 1999', catalogue)
  assert [m.title for m in movies] == ["Up (2009)", "The Matrix (1999)"]


def test_load_catalogue_both_formats(tmp_path):
  redial = tmp_path / "movies_with_mentions.csv"
  redial.write_text("movieId,movieName,nbMentions\n"
                    "1,Headhunter  (2009),1\n2,The Matrix (1999),50\n"
                    "3,American Pie ,2\n")
  movielens = tmp_path / "movies.csv"
  movielens.write_text('movieId,title,genres\n'
                       '2571,"Matrix, The (1999)",Action|Sci-Fi\n'
                       '1,Toy Story (1995),Animation\n'
                       '47,Seven (a.k.a. Se7en) (1995),Thriller\n')
  catalogue = catalogue_lib.load_catalogue([str(redial), str(movielens)])
  assert len(catalogue) == 5  # The Matrix (1999) is in both files.
  assert catalogue.lookup("se7en").title == "Seven (1995)"  # An alias.
  assert catalogue.lookup("toy story").title == "Toy Story (1995)"
  assert catalogue.lookup("matrix").popularity == 50
  assert catalogue.lookup("american pie").title == "American Pie"


def test_load_catalogue_errors_name_file_and_line(tmp_path):
  bad = tmp_path / "bad.csv"
  bad.write_text("id,name\n1,x\n")
  with pytest.raises(errors.UserError, match=r"bad.csv:1: header"):
    catalogue_lib.load_catalogue([str(bad)])
  empty = tmp_path / "empty.csv"
  empty.write_text("movieId,title,genres\n1,A (1990),x\n2,,y\n")
  with pytest.raises(errors.UserError,
                     match=r"empty.csv:3: field 'title' is empty"):
    catalogue_lib.load_catalogue([str(empty)])


def test_load_catalogue_real_data(shared_data):
  catalogue = catalogue_lib.load_catalogue([
      str(shared_data / "redial" / "movies_with_mentions.csv"),
      str(shared_data / "movielens" / "ml-latest-small" / "movies.csv"),
  ])
  assert len(catalogue) > 6000
  assert catalogue.lookup("the matrix").title == "The Matrix (1999)"
  assert catalogue.lookup("toy story 1995").title == "Toy Story (1995)"
  text, _ = catalogue_lib.mark_titles(
      "i liked the matrix 1999 and the dark knight", catalogue)
  assert text == ("i liked @ The Matrix (1999) @ and "
                  "@ The Dark Knight (2008) @")


def test_recommended_titles_and_readable_reply(catalogue):
  reply = ("try @ the matrix (1999) @ or @ heat (1995) @ or "
           "@ the matrix (1999) @ or @ zzz (2020) @")
  # Titles outside the catalogue are never recommendations.
  assert catalogue_lib.recommended_titles(reply, catalogue) == [
      "The Matrix (1999)", "Heat (1995)"]
  assert catalogue_lib.unknown_titles(reply, catalogue) == ["zzz (2020)"]
  assert catalogue_lib.readable_reply("try @ heat (1995) @!", catalogue) == (
      "try Heat (1995)!")


def test_model_title_with_another_year_is_not_swapped(catalogue):
  # The issue: "the sixth sense (1994)" was shown as The Sixth Sense (1999).
  reply = "try @ the matrix (1994) @ or @ halloween (1978) @ or @ heat @"
  assert catalogue_lib.recommended_titles(reply, catalogue) == [
      "Halloween (1978)"]
  assert catalogue_lib.unknown_titles(reply, catalogue) == [
      "the matrix (1994)", "heat"]
  assert catalogue_lib.readable_reply(reply, catalogue) == (
      "try the matrix (1994) or Halloween (1978) or heat")
  assert catalogue.lookup("The Matrix (1994)") is None
  assert catalogue.lookup("the matrx (1994)") is None  # Fuzzy too.


@pytest.mark.parametrize("text,expected", [
    ("i loved the matrix and heat",
     "i loved @ The Matrix (1999) @ and @ Heat (1995) @"),
    ("heat", "@ Heat (1995) @"),
    ("the matrix", "@ The Matrix (1999) @"),
    # Everyday words stay words.
    ("what's up? i grew up on it", "what's up? i grew up on it"),
])
def test_lower_case_titles_are_matched_when_unambiguous(
    catalogue, text, expected):
  notes = []
  assert catalogue_lib.mark_titles(text, catalogue, notes)[0] == expected
  assert notes == []


def test_lower_case_titles_on_the_real_catalogue(shared_data):
  catalogue = catalogue_lib.load_catalogue(
      [str(shared_data / "redial" / "movies_with_mentions.csv")])
  notes = []
  text, _ = catalogue_lib.mark_titles("i loved the matrix, alien and heat",
                                 catalogue, notes)
  # "The Matrix" without a year is not another film; Alien (1979) has 134
  # mentions to The Alien (2016)'s 6; "heat" is four films.
  assert text == ("i loved @ The Matrix (1999) @, @ Alien (1979) @ and heat")
  assert notes == [
      '"heat" could be The Heat (2013), Heat (1996), Heat (1995) or Heat '
      '(2006): add the year, e.g. "heat 2013"']
  assert catalogue_lib.recommended_titles(
      "@ the sixth sense (1994) @ @ the a classics (1983) @", catalogue) == []


def test_ambiguous_or_wrong_year_titles_say_so(catalogue):
  notes = []
  text, movies = catalogue_lib.mark_titles(
      "i loved halloween and Heat (1996) and @ the matrix (1994) @",
      catalogue, notes)
  assert text == ("i loved halloween and Heat (1996) and "
                  "@ the matrix (1994) @")
  assert movies == []
  assert notes == [
      '"halloween" could be Halloween (2007) or Halloween (1978): add the '
      'year, e.g. "halloween 2007"',
      "Heat (1996) is not in the catalogue (it has Heat (1995))",
      "the matrix (1994) is not in the catalogue (it has The Matrix (1999))",
  ]
