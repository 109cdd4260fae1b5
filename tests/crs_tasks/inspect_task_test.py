"""Tests for crs_tasks.inspect_task on a bundled-sample task."""

import pytest
import seqio

from crs_runtime import errors
from crs_tasks import features
from crs_tasks import inspect_task


def test_length_stats_hand_computed():
  stats = inspect_task.length_stats([1, 2, 3, 10], limit=3)
  # Sorted [1, 2, 3, 10]; numpy linear percentiles at (n - 1) * q:
  # p50 -> 1.5 -> 2.5; p90 -> 2.7 -> 3 + 0.7 * 7 = 7.9; p99 -> 2.97 -> 9.79.
  assert stats == pytest.approx({
      "count": 4, "mean": 4.0, "p50": 2.5, "p90": 7.9, "p99": 9.79,
      "max": 10.0, "truncated": 0.25,
  })
  assert inspect_task.length_stats([], limit=3) == {"count": 0}


def test_inspect_sample_reviews(tmp_path):
  seqio.set_tfds_data_dir_override(str(tmp_path))
  try:
    report = inspect_task.inspect(
        "crs_sample_ml_reviews_v001", split="validation", n=2,
        limits={"inputs": 512, "targets": 8},
    )
    task = seqio.get_mixture_or_task("crs_sample_ml_reviews_v001")
    examples = list(task.get_dataset(
        None, split="validation", shuffle=False, use_cached=False
    ).as_numpy_iterator())
  finally:
    seqio.set_tfds_data_dir_override(None)
  lines = report.splitlines()
  assert lines[0] == "== crs_sample_ml_reviews_v001 (validation) =="
  vocab = features.get_vocabulary()
  first = examples[0]["inputs_pretokenized"].decode()
  n_tokens = len(vocab.encode(first)) + 1  # + EOS
  assert lines[1] == "-- example 0"
  assert lines[2] == f"inputs ({n_tokens} tokens): {first}"
  assert sum(line.startswith("-- example") for line in lines) == 2
  # Independent statistics from the pretokenized strings.
  targets = [len(vocab.encode(ex["targets_pretokenized"].decode())) + 1
             for ex in examples]
  expected = inspect_task.length_stats(targets, limit=8)
  assert f"over {len(examples)} examples" in report
  assert lines[-1] == (
      f"targets: mean {expected['mean']:.1f}, p50 {expected['p50']:.0f}, "
      f"p90 {expected['p90']:.0f}, p99 {expected['p99']:.0f}, max "
      f"{expected['max']:.0f}, truncated at 8: "
      f"{100 * expected['truncated']:.2f}%"
  )
  assert 0 < expected["truncated"] < 1


def test_list_names_shows_every_registered_task_and_mixture():
  listed = inspect_task.list_names().splitlines()
  assert "mixture crs_sample_t5cr_v001" in listed
  assert "task crs_redial_v001" in listed
  assert len(listed) == len(seqio.MixtureRegistry.names()) + len(
      seqio.TaskRegistry.names())


def test_unknown_task_is_a_user_error_with_close_matches():
  with pytest.raises(errors.UserError,
                     match="did you mean crs_redial_v001"):
    inspect_task.inspect("crs_redail_v001")
