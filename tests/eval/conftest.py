"""Fixtures of the eval tests."""

import pytest

from eval import chat_catalogue


@pytest.fixture(name="catalogue")
def catalogue_fixture():
  return chat_catalogue.Catalogue([
      chat_catalogue.Movie("The Matrix", "1999", 40),
      chat_catalogue.Movie("Star Wars", "1977", 30),
      chat_catalogue.Movie("Halloween", "1978", 5),
      chat_catalogue.Movie("Halloween", "2007", 9),
      chat_catalogue.Movie("Up", "2009", 20),
      chat_catalogue.Movie("Heat", "1995", 3),
      chat_catalogue.Movie("Am\u00e9lie", "2001", 1),
      chat_catalogue.Movie("The Lord of the Rings: The Two Towers", "2002", 8),
  ])
