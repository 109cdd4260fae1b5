"""Tests for crs_runtime/errors.py: messages, close matches, registry names."""

import pytest
import seqio

from crs_runtime import errors


def test_format_message_leaves_out_missing_parts():
  assert errors.format_message("bad", where="a.csv:3", fix="fix it") == (
      "a.csv:3: bad. Fix: fix it")
  assert errors.format_message("bad?", fix="x") == "bad? Fix: x"
  assert errors.format_message("bad.") == "bad."


def test_close_matches():
  assert errors.close_matches(
      "TRAIN_STEPZ", ["TRAIN_STEPS", "BATCH_SIZE", "EVAL_STEPS"]) == [
          "TRAIN_STEPS"]
  assert errors.did_you_mean("crs_redail_v001", ["crs_redial_v001"]) == (
      "did you mean crs_redial_v001?")
  assert errors.did_you_mean("zzz", ["crs_redial_v001"]) is None


def test_unknown_task_name_suggests_close_matches():
  import crs_tasks  # pylint: disable=g-import-not-at-top,unused-import
  with pytest.raises(errors.UserError) as info:
    errors.get_mixture_or_task("crs_sample_t5cr_v01",
                               where="MIXTURE_OR_TASK_NAME")
  text = str(info.value)
  assert text.startswith("MIXTURE_OR_TASK_NAME: unknown task or mixture "
                         "crs_sample_t5cr_v01; did you mean "
                         "crs_sample_t5cr_v001")


def test_get_subtasks_expands_a_mixture_and_keeps_a_task():
  import crs_tasks  # pylint: disable=g-import-not-at-top,unused-import
  mixture = seqio.get_mixture_or_task("crs_sample_t5cr_v002")
  assert [t.name for t in errors.get_subtasks("crs_sample_t5cr_v002")] == [
      t.name for t in mixture.tasks]
  assert len(mixture.tasks) > 1
  assert [t.name for t in errors.get_subtasks("crs_sample_redial_v002")] == [
      "crs_sample_redial_v002"]
  with pytest.raises(errors.UserError, match="did you mean"):
    errors.get_subtasks("crs_sample_redial_v02", where="TASK")
