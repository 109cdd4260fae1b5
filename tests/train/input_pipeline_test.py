"""Tests for train/input_pipeline.py on the toy task from conftest.py."""

import numpy as np
import pytest

from train import input_pipeline

LENGTHS = {"inputs": 7, "targets": 5}


def _cfg(task, **kw):
  args = dict(
      mixture_or_task_name=task, task_feature_lengths=LENGTHS, split="train",
      batch_size=4, shuffle=True, seed=3)
  args.update(kw)
  return input_pipeline.DatasetConfig(**args)


def _take(ds, n):
  it = ds.as_numpy_iterator()
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_batches_have_model_features_with_distinct_lengths(toy_task):
  batch = _take(input_pipeline.get_dataset(_cfg(toy_task)), 1)[0]
  assert sorted(batch) == [
      "decoder_input_tokens", "decoder_loss_weights",
      "decoder_target_tokens", "encoder_input_tokens"]
  assert batch["encoder_input_tokens"].shape == (4, 7)
  assert batch["decoder_target_tokens"].shape == (4, 5)
  # Decoder inputs are the targets shifted right with BOS 0.
  np.testing.assert_array_equal(batch["decoder_input_tokens"][:, 0], 0)
  np.testing.assert_array_equal(
      batch["decoder_input_tokens"][:, 1:],
      batch["decoder_target_tokens"][:, :-1])


def test_packing_adds_segment_ids(toy_task):
  batch = _take(
      input_pipeline.get_dataset(_cfg(
          toy_task, pack=True, batch_size=2,
          task_feature_lengths={"inputs": 40, "targets": 20})),
      1)[0]
  assert "encoder_segment_ids" in batch and "decoder_positions" in batch
  assert batch["encoder_segment_ids"].max() >= 2  # Two examples in one row.


def test_same_seed_same_order_other_seed_other_order(toy_task):
  first = _take(input_pipeline.get_dataset(_cfg(toy_task)), 15)
  again = _take(input_pipeline.get_dataset(_cfg(toy_task)), 15)
  _assert_batches_equal(first, again)
  other = _take(input_pipeline.get_dataset(_cfg(toy_task, seed=4)), 15)
  assert any(
      not np.array_equal(a["encoder_input_tokens"], b["encoder_input_tokens"])
      for a, b in zip(first, other))


def test_iterator_resumes_at_saved_position(toy_task):
  # 48 examples / 4 = 12 batches per epoch: position 10 crosses an epoch.
  dataset_fn = lambda: input_pipeline.get_dataset(_cfg(toy_task))
  it = input_pipeline.BatchIterator(dataset_fn)
  full = [next(it) for _ in range(16)]
  assert it.position == 16
  resumed = input_pipeline.BatchIterator(dataset_fn, position=10)
  assert resumed.position == 10
  _assert_batches_equal(full[10:], [next(resumed) for _ in range(6)])
  assert resumed.position == 16


def test_mixture_iterator_resumes(toy_task):
  del toy_task
  cfg = _cfg("trainer_test_toy_mix_v001")
  dataset_fn = lambda: input_pipeline.get_dataset(cfg)
  it = input_pipeline.BatchIterator(dataset_fn)
  full = [next(it) for _ in range(8)]
  resumed = input_pipeline.BatchIterator(dataset_fn, position=5)
  _assert_batches_equal(full[5:], [next(resumed) for _ in range(3)])


def test_negative_position_is_rejected(toy_task):
  with pytest.raises(ValueError, match="position"):
    input_pipeline.BatchIterator(
        lambda: input_pipeline.get_dataset(_cfg(toy_task)), position=-1)


def test_pad_batch_adds_zero_rows():
  batch = {"a": np.array([[1, 2], [3, 4]]), "b": np.array([5, 6])}
  padded = input_pipeline.pad_batch(batch, 3)
  np.testing.assert_array_equal(padded["a"], [[1, 2], [3, 4], [0, 0]])
  np.testing.assert_array_equal(padded["b"], [5, 6, 0])
  with pytest.raises(ValueError, match="'a' has 2 > 1 rows"):
    input_pipeline.pad_batch(batch, 1)


def test_eval_datasets_cover_each_task_once(toy_task):
  del toy_task
  cfg = _cfg("trainer_test_toy_mix_v001", split="validation", shuffle=False)
  datasets = input_pipeline.get_eval_datasets(cfg)
  assert sorted(datasets) == [
      "trainer_test_toy_v001", "trainer_test_toy_v001_b"]
  for ds in datasets.values():
    batches = list(ds.as_numpy_iterator())
    # 12 validation examples in batches of 4, each row one example.
    assert len(batches) == 3
    rows = sum(int((b["decoder_loss_weights"].sum(-1) > 0).sum())
               for b in batches)
    assert rows == 12
