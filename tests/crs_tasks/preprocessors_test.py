"""Literal-example tests of crs_tasks/preprocessors.py."""

import functools

from absl.testing import absltest
from seqio import test_utils
import tensorflow as tf

from crs_tasks import preprocessors


def _redial_example(**overrides):
  ex = {
      "context": "[User] I loved @ Amélie (2001) @",
      "response": "Then see @ Heat (1995) @",
      "conversation_id": "20001",
      "turn_index": 1,
      "seeker_movies": ["Amélie (2001)"],
      "recommender_movies": ["Heat (1995)", "Up (2009)"],
      "target_movies": ["Heat (1995)"],
      "target_movies_repeated": tf.constant([], tf.string),
      "context_movies": ["Amélie (2001)"],
  }
  ex.update(overrides)
  return ex


# ================================== Generic ==================================


class LowercaseTest(absltest.TestCase):

  def test_scalar_and_list_features_non_ascii(self):
    ds = tf.data.Dataset.from_tensors({
        "inputs": "I LOVED @ Amélie (2001) @ À",
        "target_movies": ["Heat (1995)", "ÉTÉ (2000)"],
        "turn_index": 3,
    })
    ds = preprocessors.lowercase(ds, features=("inputs", "target_movies"))
    test_utils.assert_dataset(
        ds,
        {
            "inputs": "i loved @ amélie (2001) @ à",
            "target_movies": ["heat (1995)", "été (2000)"],
            "turn_index": 3,
        },
    )

  def test_default_features_leave_others(self):
    ds = tf.data.Dataset.from_tensors(
        {"inputs": "AB", "targets": "Cd", "id": "KeepMe"}
    )
    test_utils.assert_dataset(
        preprocessors.lowercase(ds),
        {"inputs": "ab", "targets": "cd", "id": "KeepMe"},
    )

  def test_missing_feature_is_named(self):
    ds = tf.data.Dataset.from_tensors({"inputs": "A"})
    with self.assertRaisesRegex(KeyError, "'targets' not in example"):
      preprocessors.lowercase(ds)


# =================================== ReDial ==================================


class RedialToTextTest(absltest.TestCase):

  def test_prefix_and_metadata_pass_through(self):
    ds = tf.data.Dataset.from_tensors(_redial_example())
    ds = preprocessors.redial_to_text(ds)
    test_utils.assert_dataset(
        ds,
        {
            "inputs": "redial conversation: [User] I loved @ Amélie (2001) @",
            "targets": "Then see @ Heat (1995) @",
            "conversation_id": "20001",
            "turn_index": 1,
            "seeker_movies": ["Amélie (2001)"],
            "recommender_movies": ["Heat (1995)", "Up (2009)"],
            "target_movies": ["Heat (1995)"],
            "target_movies_repeated": [],
            "context_movies": ["Amélie (2001)"],
        },
    )

  def test_empty_context_and_custom_prefix(self):
    ds = tf.data.Dataset.from_tensors(_redial_example(context=""))
    ds = preprocessors.redial_to_text(ds, prefix="movie recommendation: ")
    out = list(ds.as_numpy_iterator())
    self.assertEqual(out[0]["inputs"], b"movie recommendation:")

  def test_lowercased_task_chain_lowercases_titles_too(self):
    ds = tf.data.Dataset.from_tensors(_redial_example())
    ds = preprocessors.redial_to_text(ds)
    ds = functools.partial(
        preprocessors.lowercase, features=preprocessors.REDIAL_TEXT_FEATURES
    )(ds)
    test_utils.assert_dataset(
        ds,
        {
            "inputs": "redial conversation: [user] i loved @ amélie (2001) @",
            "targets": "then see @ heat (1995) @",
            "conversation_id": "20001",
            "turn_index": 1,
            "seeker_movies": ["amélie (2001)"],
            "recommender_movies": ["heat (1995)", "up (2009)"],
            "target_movies": ["heat (1995)"],
            "target_movies_repeated": [],
            "context_movies": ["amélie (2001)"],
        },
    )


if __name__ == "__main__":
  absltest.main()
