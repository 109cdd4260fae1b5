"""Tests for train/model_inputs.py: Task and text -> model features."""

import numpy as np
import seqio.test_utils

from train import input_pipeline
from train import model_inputs

LENGTHS = {"inputs": 11, "targets": 5}


def test_task_examples_keep_metadata_in_order(toy_task):
  examples = model_inputs.task_examples(toy_task, split="test",
                                        task_feature_lengths=LENGTHS)
  assert [ex["conversation_id"] for ex in examples] == [
      f"test-{i}" for i in range(6)]
  assert examples[0]["target_movies"] == ["Heat (1995)"]
  assert examples[1]["target_movies"] == ["Heat (1995)", "Up (2009)"]
  assert isinstance(examples[0]["inputs_pretokenized"], str)
  assert all(len(ex["inputs"]) <= LENGTHS["inputs"] for ex in examples)
  assert len(model_inputs.task_examples(
      toy_task, split="test", num_examples=2,
      task_feature_lengths=LENGTHS)) == 2


def test_model_features_equal_the_training_pipeline(toy_task):
  """The same rows as `input_pipeline` (the model's feature converter)."""
  examples = model_inputs.task_examples(toy_task, split="test",
                                        task_feature_lengths=LENGTHS)
  features = model_inputs.model_features(examples, LENGTHS)
  cfg = input_pipeline.DatasetConfig(toy_task, LENGTHS, "test", 6)
  (batch,) = list(input_pipeline.get_dataset(
      cfg, num_epochs=1).as_numpy_iterator())
  assert sorted(features) == sorted(batch)
  for key in batch:
    np.testing.assert_array_equal(features[key], batch[key], err_msg=key)


def test_iter_batches_pads_the_last_batch_with_its_last_row():
  features = {"x": np.arange(5)[:, None]}
  got = [(s, e, b["x"][:, 0].tolist())
         for s, e, b in model_inputs.iter_batches(features, 2)]
  assert got == [(0, 2, [0, 1]), (2, 4, [2, 3]), (4, 5, [4, 4])]


def test_tokenize_texts_keeps_the_first_tokens_and_eos():
  vocab = seqio.test_utils.sentencepiece_vocab()
  ids = list(vocab.encode("this is a test"))
  assert model_inputs.tokenize_texts(vocab, ["this is a test"], 4) == [
      ids[:3] + [1]]
  assert model_inputs.tokenize_texts(vocab, ["this is a test"], 40) == [
      ids + [1]]
