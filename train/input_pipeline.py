"""Input pipeline: registered seqio Tasks -> batches of model features.

Data flows by name: a `DatasetConfig` names a seqio Task or Mixture; its
examples go through `seqio.EncDecFeatureConverter` (optionally packing) and
are batched into numpy dicts with the t5x model-feature keys
(`encoder_input_tokens`, `decoder_input_tokens`, `decoder_target_tokens`,
`decoder_loss_weights`, plus `*_segment_ids`/`*_positions` when packed).

Resumability: the training stream is a pure function of the config and the
seed (seqio shuffles and samples mixtures with that seed, and tf.data keeps
element order deterministic), so its position is one integer, the number of
batches consumed. `BatchIterator` counts it, the trainer saves it with every
checkpoint, and on resume the iterator re-creates the stream and skips that
many batches with `tf.data.Dataset.skip`. Skipping recomputes (and throws away)
the skipped batches' preprocessing: about the cost of reading them, which is
seconds for thousands of ReDial batches on CPU. Very long runs on large
mixtures would want a checkpointable iterator (tf.train.Checkpoint) instead.

Several processes (`train/distributed.py`): the global batch is made of
`num_shards` blocks, block s read from `seqio.ShardInfo(s, num_shards)` of
the Task or Mixture (seqio shards a Task's files when it has enough of them,
else its examples, before any preprocessing). `get_local_dataset` gives one
process its blocks side by side, so each process reads and preprocesses only
its part of the data, and the position (batches consumed) is the same on every
process.

To add a data source, register a seqio Task in `crs_tasks/` and name it in
`DatasetConfig.mixture_or_task_name`; nothing here needs to change.
"""

import dataclasses
import importlib
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from crs_runtime import errors

Batch = dict[str, np.ndarray]

TEXT_FEATURES = ("inputs", "targets")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
  """Which data to read and how (the fields of t5x's `utils.DatasetConfig`).

  Attributes:
    mixture_or_task_name: a registered seqio Task or Mixture name.
    task_feature_lengths: e.g. `{"inputs": 512, "targets": 128}`.
    split: dataset split, e.g. "train", "validation", "test".
    batch_size: global batch size (examples, or packed rows).
    shuffle: whether seqio shuffles the examples.
    seed: shuffle and mixture-sampling seed (fixes the data order).
    use_cached: read the seqio cache (`seqio_cache_tasks`) instead of the
      raw source.
    pack: pack several examples per row (adds segment ids and positions).
    module: a module to import before looking the name up (registers it),
      e.g. "crs_tasks".
  """

  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  split: str
  batch_size: int
  shuffle: bool = False
  seed: Optional[int] = None
  use_cached: bool = False
  pack: bool = False
  module: Optional[str] = None

  def __post_init__(self):
    check_feature_lengths(self.task_feature_lengths)


def check_feature_lengths(
    lengths: Optional[Mapping[str, int]],
    where: str = "TASK_FEATURE_LENGTHS",
    required: Sequence[str] = TEXT_FEATURES,
) -> None:
  """Raises a UserError unless `lengths` gives each feature a length > 0.

  Args:
    lengths: e.g. `{"inputs": 512, "targets": 128}`.
    where: what set them (named in the message), e.g. the gin macro.
    required: features that must have a length.
  """
  fix = ("set positive lengths, e.g. "
         "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 128}\"")
  if not isinstance(lengths, Mapping):
    raise errors.UserError(
        f"expected a dict of feature lengths, got {lengths!r}", where=where,
        fix=fix)
  for key in required:
    if key not in lengths:
      raise errors.UserError(f"no length for {key!r} in {dict(lengths)}",
                             where=where, fix=fix)
  for key, value in lengths.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
        value <= 0):
      raise errors.UserError(
          f"the {key!r} length must be a positive integer, got {value!r}",
          where=where, fix=fix)


def get_provider(
    cfg: DatasetConfig,
) -> seqio.DatasetProviderBase:
  """Imports `cfg.module` (if any) and returns the named Task or Mixture.

  Raises:
    errors.UserError: no Task or Mixture has that name (with close matches).
  """
  if cfg.module:
    importlib.import_module(cfg.module)
  return errors.get_mixture_or_task(cfg.mixture_or_task_name,
                                    where="MIXTURE_OR_TASK_NAME")


def check_prepared(cfg: DatasetConfig) -> None:
  """Fails at once when a TFDS dataset behind `cfg` can not be prepared.

  Builders that know their inputs (crs_tasks' `check_inputs`, which raises
  a `UserError` with the `prepare` command) are asked before any work, so a
  run on an unprepared task stops in seconds instead of after compiling, or
  after minutes of download retries. Prepared datasets and other builders
  are not touched.

  Args:
    cfg: the dataset config about to be read.
  """
  if cfg.use_cached:
    return
  for task in seqio.get_subtasks(get_provider(cfg)):
    source = task.source
    if not isinstance(source, seqio.TfdsDataSource):
      continue
    # A fresh builder: seqio memoizes its own, and one made before the data
    # exist would keep reporting no splits after seqio prepares them.
    name, data_dir = source.tfds_dataset.get_split_params(None)
    builder = tfds.builder(name, data_dir=data_dir)
    check = getattr(builder, "check_inputs", None)
    if check is not None and not builder.data_path.exists():
      check(None)


def _deterministic(ds: tf.data.Dataset) -> tf.data.Dataset:
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options)


def get_dataset(
    cfg: DatasetConfig,
    *,
    num_epochs: Optional[int] = None,
    drop_remainder: bool = True,
    feature_converter_cls: Callable[..., seqio.FeatureConverter] = (
        seqio.EncDecFeatureConverter
    ),
    shard_info: Optional[seqio.ShardInfo] = None,
    batch_size: Optional[int] = None,
) -> tf.data.Dataset:
  """Returns the batched model-feature dataset named by `cfg`.

  Args:
    cfg: what to read.
    num_epochs: passes over the data; None repeats forever (training).
    drop_remainder: drop a last, smaller batch (training needs fixed shapes).
    feature_converter_cls: the model's feature converter class.
    shard_info: read only this shard of the data (None or 1 shard: all).
    batch_size: rows per batch (default `cfg.batch_size`).

  Returns:
    A `tf.data.Dataset` of dicts of `[batch_size, length]` int32 tensors.
  """
  if shard_info is not None and shard_info.num_shards == 1:
    shard_info = None  # The same stream as an unsharded read.
  provider = get_provider(cfg)
  ds = provider.get_dataset(
      sequence_length=dict(cfg.task_feature_lengths),
      split=cfg.split,
      use_cached=cfg.use_cached,
      shuffle=cfg.shuffle,
      seed=cfg.seed,
      shard_info=shard_info,
      num_epochs=num_epochs,
  )
  converter = feature_converter_cls(pack=cfg.pack)
  ds = converter(ds, dict(cfg.task_feature_lengths))
  ds = ds.batch(batch_size or cfg.batch_size, drop_remainder=drop_remainder)
  return _deterministic(ds.prefetch(tf.data.AUTOTUNE))


def get_local_dataset(
    cfg: DatasetConfig,
    *,
    shard_ids: Sequence[int],
    num_shards: int,
    feature_converter_cls: Callable[..., seqio.FeatureConverter] = (
        seqio.EncDecFeatureConverter
    ),
) -> tf.data.Dataset:
  """This process's rows of every global training batch (repeated forever).

  The global batch of `cfg.batch_size` rows is `num_shards` blocks of
  `cfg.batch_size // num_shards` rows, block s from shard s; this returns the
  blocks `shard_ids` concatenated. One shard is exactly `get_dataset(cfg)`.

  Args:
    cfg: what to read; `batch_size` is the global batch.
    shard_ids: the shards this process reads (`DataLayout.shard_ids`).
    num_shards: shards of the global batch.
    feature_converter_cls: the model's feature converter class.

  Returns:
    A dataset of `[len(shard_ids) * batch_size // num_shards, length]` dicts.
  """
  if cfg.batch_size % num_shards:
    raise ValueError(
        f"batch size {cfg.batch_size} does not divide into {num_shards} "
        "shards")
  blocks = [
      get_dataset(cfg, feature_converter_cls=feature_converter_cls,
                  shard_info=seqio.ShardInfo(index=s, num_shards=num_shards),
                  batch_size=cfg.batch_size // num_shards)
      for s in shard_ids
  ]
  if len(blocks) == 1:
    return blocks[0]
  ds = tf.data.Dataset.zip(tuple(blocks)).map(
      lambda *parts: {k: tf.concat([p[k] for p in parts], 0)
                      for k in parts[0]})
  return _deterministic(ds.prefetch(tf.data.AUTOTUNE))


class BatchIterator(Iterator[Batch]):
  """Numpy batches from a deterministic dataset, counting its position.

  `position` is the number of batches handed out so far. Creating an iterator
  with `position=k` yields exactly the batches an uninterrupted iterator would
  yield from its k-th on (see the module docstring for the cost).
  """

  def __init__(
      self, dataset_fn: Callable[[], tf.data.Dataset], position: int = 0
  ):
    if position < 0:
      raise ValueError(f"data position must be >= 0, got {position}")
    self._position = position
    ds = dataset_fn()
    if position:
      ds = ds.skip(position)
    self._it = ds.as_numpy_iterator()

  @property
  def position(self) -> int:
    return self._position

  def __next__(self) -> Batch:
    batch = next(self._it)
    self._position += 1
    return batch


def pad_batch(batch: Batch, batch_size: int) -> Batch:
  """Pads every array in `batch` with zero rows up to `batch_size` rows.

  Zero rows have zero `decoder_loss_weights`, so they add nothing to losses
  or token counts; this lets the last, smaller eval batch reuse the compiled
  step.

  Args:
    batch: dict of arrays with a common leading dimension <= batch_size.
    batch_size: rows wanted.

  Returns:
    The padded batch.
  """
  out = {}
  for key, value in batch.items():
    n = value.shape[0]
    if n > batch_size:
      raise ValueError(f"batch feature {key!r} has {n} > {batch_size} rows")
    pad = [(0, batch_size - n)] + [(0, 0)] * (value.ndim - 1)
    out[key] = np.pad(value, pad)
  return out


def get_eval_datasets(
    cfg: DatasetConfig,
    *,
    feature_converter_cls: Callable[..., seqio.FeatureConverter] = (
        seqio.EncDecFeatureConverter
    ),
    shard_info: Optional[seqio.ShardInfo] = None,
    batch_size: Optional[int] = None,
) -> dict[str, tf.data.Dataset]:
  """One finite, unshuffled dataset per sub-task of `cfg`'s Task or Mixture.

  Sub-tasks without `cfg.split` are left out (e.g. MovieLens tasks that only
  have a train split); t5x's `training_eval/<task>` metrics are per task.

  Args:
    cfg: names the Task or Mixture; `split` is the eval split.
    feature_converter_cls: the model's feature converter class.
    shard_info: this process's shard of each task (None: all of it).
    batch_size: rows per batch (default `cfg.batch_size`).

  Returns:
    Mapping of task name to a batched dataset (last batch may be smaller).
  """
  provider = get_provider(cfg)
  tasks = getattr(provider, "tasks", [provider])
  out = {}
  for task in tasks:
    if cfg.split not in task.splits:
      continue
    task_cfg = dataclasses.replace(
        cfg, mixture_or_task_name=task.name, shuffle=False, module=None
    )
    out[task.name] = get_dataset(
        task_cfg,
        num_epochs=1,
        drop_remainder=False,
        feature_converter_cls=feature_converter_cls,
        shard_info=shard_info,
        batch_size=batch_size,
    )
  return out
