"""Fixtures of the eval tests."""

import pytest

from crs_chat import catalogue as catalogue_lib


@pytest.fixture(name="catalogue")
def catalogue_fixture():
  return catalogue_lib.Catalogue([
      catalogue_lib.Movie("The Matrix", "1999", 40),
      catalogue_lib.Movie("Star Wars", "1977", 30),
      catalogue_lib.Movie("Halloween", "1978", 5),
      catalogue_lib.Movie("Halloween", "2007", 9),
      catalogue_lib.Movie("Up", "2009", 20),
      catalogue_lib.Movie("Heat", "1995", 3),
      catalogue_lib.Movie("Am\u00e9lie", "2001", 1),
      catalogue_lib.Movie("The Lord of the Rings: The Two Towers", "2002", 8),
  ])
