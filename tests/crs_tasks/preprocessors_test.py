"""Literal-example tests of crs_tasks/preprocessors.py."""

import functools

import pytest
import seqio
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


def test_lowercase_scalar_and_list_features_non_ascii():
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


def test_lowercase_default_features_leave_others():
  ds = tf.data.Dataset.from_tensors(
      {"inputs": "AB", "targets": "Cd", "id": "KeepMe"}
  )
  test_utils.assert_dataset(
      preprocessors.lowercase(ds),
      {"inputs": "ab", "targets": "cd", "id": "KeepMe"},
  )


def test_lowercase_missing_feature_is_named():
  ds = tf.data.Dataset.from_tensors({"inputs": "A"})
  with pytest.raises(KeyError, match="'targets' not in example"):
    preprocessors.lowercase(ds)


# =================================== ReDial ==================================


def test_redial_to_text_prefix_and_metadata_pass_through():
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


def test_redial_to_text_empty_context_and_custom_prefix():
  ds = tf.data.Dataset.from_tensors(_redial_example(context=""))
  ds = preprocessors.redial_to_text(ds, prefix="movie recommendation: ")
  out = list(ds.as_numpy_iterator())
  assert out[0]["inputs"] == b"movie recommendation:"


def test_lowercased_task_chain_lowercases_titles_too():
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


def _trim(tokens, length, prefix):
  ds = tf.data.Dataset.from_tensors(
      {"inputs": tf.constant(tokens, tf.int32), "targets": [5]})
  ds = preprocessors.trim_inputs_keep_recent(
      ds, {"inputs": length, "targets": 4}, num_prefix_tokens=prefix)
  return list(ds.as_numpy_iterator())[0]["inputs"].tolist()


def test_trim_keeps_prefix_and_latest_tokens():
  # length 6 leaves 5 tokens before EOS: 2 of prefix + the last 3.
  assert _trim([7, 8, 1, 2, 3, 4, 5, 6], 6, 2) == [7, 8, 4, 5, 6]
  assert _trim([7, 8, 1, 2, 3, 4, 5, 6], 6, 0) == [2, 3, 4, 5, 6]


def test_trim_prefix_counted_with_the_task_vocabulary():
  vocab = test_utils.sentencepiece_vocab()
  prefix_ids = vocab.encode("hello world")
  assert len(prefix_ids) > 1
  tokens = prefix_ids + [11, 12, 13, 14, 15, 16, 17, 18]
  ds = tf.data.Dataset.from_tensors(
      {"inputs": tf.constant(tokens, tf.int32)})
  features = {"inputs": seqio.Feature(vocab)}
  out = preprocessors.trim_inputs_keep_recent(
      ds, {"inputs": len(prefix_ids) + 3}, output_features=features,
      prefix="hello world ")
  got = list(out.as_numpy_iterator())[0]["inputs"].tolist()
  assert got == prefix_ids + [17, 18]
  with pytest.raises(ValueError, match="output_features"):
    preprocessors.trim_inputs_keep_recent(ds, {"inputs": 4}, prefix="x")


def test_trim_short_inputs_and_no_length_are_unchanged():
  assert _trim([7, 8, 1, 2, 3], 6, 2) == [7, 8, 1, 2, 3]
  ds = tf.data.Dataset.from_tensors({"inputs": [1, 2, 3]})
  out = preprocessors.trim_inputs_keep_recent(ds, None, 2)
  assert list(out.as_numpy_iterator())[0]["inputs"].tolist() == [1, 2, 3]


def test_trim_redial_task_keeps_the_last_turn():
  import crs_tasks  # pylint: disable=g-import-not-at-top,unused-import
  task = seqio.get_mixture_or_task("crs_sample_redial_v001")
  vocab = task.output_features["inputs"].vocabulary
  full = {ex["conversation_id"]: ex for ex in task.get_dataset(
      None, split="test", shuffle=False).as_numpy_iterator()
          if len(ex["inputs"]) > 40}
  short = task.get_dataset({"inputs": 32, "targets": 16}, split="test",
                           shuffle=False)
  checked = 0
  for ex in short.as_numpy_iterator():
    long_ex = full.get(ex["conversation_id"])
    if long_ex is None or long_ex["turn_index"] != ex["turn_index"]:
      continue
    tokens = ex["inputs"].tolist()
    assert tokens[-1] == vocab.eos_id
    assert len(tokens) == 32
    assert vocab.decode(tokens[:5]) == "redial conversation:"
    # Both end with EOS; before it, the same 26 latest history tokens.
    assert tokens[5:-1] == long_ex["inputs"][-27:-1].tolist()
    checked += 1
  assert checked > 5

