"""Literal-example tests of crs_tasks/postprocessors.py."""

import numpy as np
import tensorflow as tf

from crs_tasks import postprocessors

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


# --------------------------------- to_python --------------------------------


def test_to_python_makes_json_friendly_values():
  assert postprocessors.to_python(np.array([b"heat (1995)"])) == [
      "heat (1995)"]
  value = postprocessors.to_python(np.array(3, dtype=np.int32))
  assert value == 3 and isinstance(value, int)
  assert postprocessors.to_python(tf.constant(b"up (2009)")) == "up (2009)"
  assert postprocessors.to_python(
      [np.float32(0.5), (b"a", np.array([[1, 2]]))]) == [0.5, ["a", [[1, 2]]]]
