"""Every registered Task read per host, as t5x does on a pod slice.

For n = 2 and 4 hosts, `task.get_dataset(shard_info=seqio.ShardInfo(i, n))`
must give shards that together are exactly the unsharded split (as a
multiset of whole examples, metadata included) and are even. The builders
write one file per split, so seqio shards at the examples, before any
preprocessing: the shards' source examples differ in number by at most one
(a Task that filters, like `crs_*_ml_tags_reversed`, then drops a few more
from one shard than from another).

The default suite checks one Task of each kind (ReDial, MovieLens, probes) on
the bundled sample and the full ReDial validation split
(../shared/data); `-m slow` checks every bundled-sample Task on every split
and the ml-latest-small Tasks (about 10 minutes on 2 busy cores). The ml-25m
and reviews Tasks (`crs_ml_*`) and the `probe_*` Tasks over built probe files
share their Task code with the ones checked here; their data is not on this
machine.
"""

import collections

import pytest
import seqio

import crs_tasks  # pylint: disable=unused-import  # Registers the Tasks.
from crs_tasks import prepare

LENGTHS = {"inputs": 512, "targets": 128}
SAMPLE_TASKS = sorted(
    n for n in seqio.TaskRegistry.names()
    if n.startswith(("crs_sample_", "probe_sample_")))
REAL_TASKS = ("crs_redial_v002", "crs_redial_cased_v002",
              "crs_small_ml_sequences_v001", "crs_small_ml_tags_v001",
              "crs_small_ml_tags_reversed_v001")


def _key(value):
  if hasattr(value, "tolist"):
    value = value.tolist()
  if isinstance(value, list):
    return tuple(_key(v) for v in value)
  return value


def _examples(task, split, shard_info=None):
  ds = task.get_dataset(sequence_length=LENGTHS, split=split, shuffle=False,
                        shard_info=shard_info, num_epochs=1)
  return collections.Counter(
      tuple(sorted((k, _key(v)) for k, v in ex.items()))
      for ex in ds.as_numpy_iterator())


def assert_shards_partition_split(task_name, split):
  task = seqio.get_mixture_or_task(task_name)
  whole = _examples(task, split)
  assert whole, (task_name, split)
  for n in (2, 4):
    # One file: seqio shards the examples, not the files.
    assert len(task.source.list_shards(split)) < n
    shards = [_examples(task, split, seqio.ShardInfo(i, n)) for i in range(n)]
    assert sum(shards, collections.Counter()) == whole, (task_name, split, n)
    sizes = [sum(s.values()) for s in shards]
    # Source examples split to within one; a Task that filters (tags
    # reversed) may drop its dropped examples all from one shard.
    source = task.source.num_input_examples(split)  # None: not known.
    dropped = (source or 0) - sum(whole.values())
    assert max(sizes) - min(sizes) <= 1 + max(dropped, 0), (
        task_name, split, n, sizes, dropped)


@pytest.mark.parametrize("task_name", [
    "crs_sample_redial_v002", "crs_sample_ml_tags_reversed_v001",
    "probe_sample_recommendation_v001"])
def test_sample_task_shards_partition_validation_split(task_name):
  assert_shards_partition_split(task_name, "validation")


@pytest.mark.slow
@pytest.mark.parametrize("task_name", SAMPLE_TASKS)
def test_sample_task_shards_partition_every_split(task_name):
  for split in seqio.get_mixture_or_task(task_name).splits:
    assert_shards_partition_split(task_name, split)


def test_every_sample_task_is_checked():
  # crs_sample_* mirrors every crs_* Task family, and the crs_small_ ones
  # that have no crs_ twin (the study's pretraining Task).
  names = seqio.TaskRegistry.names()
  families = {n[len("crs_"):] for n in names
              if n.startswith("crs_") and not n.startswith(
                  ("crs_sample_", "crs_small_"))}
  families |= {n[len("crs_small_"):] for n in names
               if n.startswith("crs_small_")}
  assert families == {n[len("crs_sample_"):] for n in SAMPLE_TASKS
                      if n.startswith("crs_sample_")}
  # The four probes and the two in-format twins.
  assert len([n for n in SAMPLE_TASKS if n.startswith("probe_")]) == 6


@pytest.fixture
def real_tfds_dir(shared_data, tmp_path_factory):
  """The full ReDial prepared into a fresh TFDS dir (seconds)."""
  path = str(tmp_path_factory.mktemp("tfds_real"))
  prepare.prepare(data_dir=path, redial_dir=str(shared_data / "redial"))
  seqio.set_tfds_data_dir_override(path)
  _forget_tfds_dirs()
  yield path
  seqio.set_tfds_data_dir_override(None)
  _forget_tfds_dirs()


def _forget_tfds_dirs():
  """Drops the data dir each Task's TFDS loader kept from an earlier test.

  seqio's LazyTfdsLoader keeps the first override it saw, so a Task read by
  an earlier test in the same process would still read that test's dir.
  """
  for name in seqio.TaskRegistry.names():
    loader = getattr(seqio.TaskRegistry.get(name).source, "_tfds_dataset",
                     None)
    if loader is not None and hasattr(loader, "_data_dir_override"):
      loader._data_dir_override = None  # pylint: disable=protected-access


@pytest.fixture
def real_movielens_tfds_dir(shared_data, real_tfds_dir):
  """Adds ml-latest-small's sequences and tags."""
  prepare.prepare(data_dir=real_tfds_dir,
                  movielens_dir=str(shared_data / "movielens"),
                  movielens_source="ml-latest-small")
  return real_tfds_dir


@pytest.mark.shared_data
def test_real_redial_shards_partition_validation_split(real_tfds_dir):
  del real_tfds_dir
  assert_shards_partition_split("crs_redial_v002", "validation")


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("task_name", REAL_TASKS)
def test_real_task_shards_partition_validation_split(
    task_name, real_movielens_tfds_dir):
  del real_movielens_tfds_dir
  assert_shards_partition_split(task_name, "validation")
