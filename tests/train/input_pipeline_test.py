"""Tests for train/input_pipeline.py on the toy task from conftest.py."""

import numpy as np
import pytest
import seqio

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


# ------------------------- Per-host input shards ----------------------------


def _rows(ds, n=None):
  """Encoder-input rows of the first n batches (all when n is None)."""
  it = ds.as_numpy_iterator()
  batches = list(it) if n is None else [next(it) for _ in range(n)]
  return [tuple(r) for b in batches for r in b["encoder_input_tokens"]]


def test_one_local_shard_is_the_unsharded_stream(toy_task):
  _assert_batches_equal(
      _take(input_pipeline.get_local_dataset(
          _cfg(toy_task), shard_ids=(0,), num_shards=1), 14),
      _take(input_pipeline.get_dataset(_cfg(toy_task)), 14))


def test_local_batch_is_its_shards_blocks_side_by_side(toy_task):
  cfg = _cfg(toy_task, batch_size=8)
  both = _take(input_pipeline.get_local_dataset(
      cfg, shard_ids=(0, 1), num_shards=2), 7)
  blocks = [
      _take(input_pipeline.get_local_dataset(cfg, shard_ids=(s,),
                                             num_shards=2), 7)
      for s in (0, 1)]
  assert blocks[0][0]["encoder_input_tokens"].shape == (4, 7)
  for k, batch in enumerate(both):
    for key in batch:
      np.testing.assert_array_equal(
          batch[key], np.concatenate([blocks[0][k][key], blocks[1][k][key]]))


def test_shuffled_shards_read_their_halves_of_the_split(toy_task):
  unshuffled = _cfg(toy_task, shuffle=False)
  halves = [_rows(input_pipeline.get_dataset(
      unshuffled, num_epochs=1, shard_info=seqio.ShardInfo(s, 2),
      drop_remainder=False)) for s in (0, 1)]
  everything = _rows(input_pipeline.get_dataset(
      unshuffled, num_epochs=1, drop_remainder=False))
  # Examples 0, 2, 4, ... and 1, 3, 5, ...: two halves making up the split.
  assert len(halves[0]) == len(halves[1]) == 24
  assert halves[0] == everything[0::2] and halves[1] == everything[1::2]
  # The shuffled, repeated training stream of shard s stays in half s.
  for s in (0, 1):
    stream = input_pipeline.get_local_dataset(
        _cfg(toy_task, batch_size=8), shard_ids=(s,), num_shards=2)
    assert set(_rows(stream, 15)) <= set(halves[s])


def test_local_dataset_needs_a_batch_that_divides(toy_task):
  with pytest.raises(ValueError, match="batch size 4 does not divide into 3"):
    input_pipeline.get_local_dataset(_cfg(toy_task), shard_ids=(0,),
                                     num_shards=3)
