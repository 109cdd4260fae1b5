"""Literal-example tests of crs_tasks/postprocessors.py."""

import numpy as np
import tensorflow as tf

from crs_tasks import postprocessors

# ------------------------------ extract_titles ------------------------------


def test_extract_titles_in_order_stripped_duplicates_kept():
  text = "watch @ Heat (1995) @ or @  up   (2009) @! @ Heat (1995) @"
  assert postprocessors.extract_titles(text) == [
      "Heat (1995)", "up (2009)", "Heat (1995)"]


def test_extract_titles_from_bytes():
  assert postprocessors.extract_titles("@ amélie (2001) @".encode()) == [
      "amélie (2001)"]


def test_extract_titles_without_titles_is_empty():
  assert postprocessors.extract_titles("no movies here") == []


def test_extract_titles_ignores_unpaired_empty_and_raw_mentions():
  assert postprocessors.extract_titles(
      "@ @ saw @123 and @ Jaws (1975) @ @") == ["Jaws (1975)"]


# ---------------------------- redial_postprocess ----------------------------


def test_prediction_is_text():
  assert postprocessors.redial_postprocess(
      b"try @ heat (1995) @") == "try @ heat (1995) @"
  assert postprocessors.redial_postprocess(
      "x", example={"target_movies": ["a"]}, is_target=False) == "x"


def test_target_gets_metadata_as_python_values():
  example = {
      "inputs": np.array([1, 2], np.int32),
      "conversation_id": b"20001",
      "turn_index": np.int32(3),
      "seeker_movies": np.array([b"up (2009)"], dtype=object),
      "recommender_movies": tf.constant(["heat (1995)", "amélie (2001)"]),
      "target_movies": np.array([b"heat (1995)"], dtype=object),
      "target_movies_repeated": np.array([], dtype=object),
      "context_movies": [b"up (2009)"],
  }
  assert postprocessors.redial_postprocess(
      b"try @ heat (1995) @", example=example, is_target=True) == {
          "text": "try @ heat (1995) @",
          "conversation_id": "20001",
          "turn_index": 3,
          "seeker_movies": ["up (2009)"],
          "recommender_movies": ["heat (1995)", "amélie (2001)"],
          "target_movies": ["heat (1995)"],
          "target_movies_repeated": [],
          "context_movies": ["up (2009)"],
      }


def test_target_without_example_is_text():
  assert postprocessors.redial_postprocess(b"hi", is_target=True) == "hi"
