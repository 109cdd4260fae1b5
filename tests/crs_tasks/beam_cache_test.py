"""Caches a bundled-sample MovieLens task with seqio's Beam pipeline.

Runs `seqio.scripts.cache_tasks_main.run_pipeline` on Beam's DirectRunner
(the same code as `python -m crs_tasks.prepare --data_dir=TFDS --sample`
then `TFDS_DATA_DIR=TFDS python -m seqio.scripts.cache_tasks_main
--module_import=crs_tasks --tasks=crs_sample_ml_sequences_v001
--output_cache_dir=DIR`), then reads the task back with `use_cached=True`
and compares it with the uncached pipeline.
"""

import os

from absl import flags
import pytest
import seqio
import tensorflow_datasets as tfds

import crs_tasks  # pylint: disable=unused-import

beam = pytest.importorskip("apache_beam")
cache_tasks_main = pytest.importorskip("seqio.scripts.cache_tasks_main")
test_pipeline = pytest.importorskip("apache_beam.testing.test_pipeline")

_TASK = "crs_sample_ml_sequences_v001"


def test_beam_cache_matches_uncached(tmp_path):
  if not flags.FLAGS.is_parsed():  # run_pipeline reads its flags' defaults.
    flags.FLAGS.mark_as_parsed()
  seqio.set_tfds_data_dir_override(str(tmp_path / "tfds"))
  # Beam reads the split sizes from TFDS, so prepare the sample first (what
  # `python -m crs_tasks.prepare --data_dir=DIR --sample` does).
  tfds.builder(
      "crs_movielens/sequences_sample", data_dir=str(tmp_path / "tfds")
  ).download_and_prepare()
  cache_dir = str(tmp_path / "cache")
  try:
    with test_pipeline.TestPipeline() as pipeline:
      output_dirs = cache_tasks_main.run_pipeline(
          pipeline, [_TASK], cache_dir
      )
    task_dir = os.path.join(cache_dir, _TASK)
    assert output_dirs == [task_dir]
    files = set(os.listdir(task_dir))
    assert {"COMPLETED", "info.train.json", "info.validation.json"} <= files

    seqio.add_global_cache_dirs([cache_dir])
    task = seqio.get_mixture_or_task(_TASK)
    assert task.cache_dir == task_dir
    lengths = {"inputs": 512, "targets": 128}

    def read(use_cached):
      ds = task.get_dataset(
          lengths, split="validation", shuffle=False, use_cached=use_cached
      )
      return sorted(
          (ex["inputs"].tolist(), ex["targets"].tolist())
          for ex in ds.as_numpy_iterator()
      )

    cached, uncached = read(True), read(False)
    assert len(cached) > 30
    assert cached == uncached
  finally:
    seqio.set_tfds_data_dir_override(None)
    seqio.set_global_cache_dirs([])
