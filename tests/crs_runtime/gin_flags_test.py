"""Tests for crs_runtime/gin_flags.py."""

import gin
import pytest

from crs_runtime import errors
from crs_runtime import gin_flags


def test_rewrite_gin_args():
  argv = ["prog", "--gin_file=a.gin", "--gin.MODEL_DIR='/tmp/x'",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 4}"]
  assert gin_flags.rewrite_gin_args(argv) == [
      "prog", "--gin_file=a.gin", "--gin_bindings=MODEL_DIR = '/tmp/x'",
      "--gin_bindings=TASK_FEATURE_LENGTHS = {'inputs': 8, 'targets': 4}"]


def test_parse_gin_finds_includes_relative_to_gin_dir(tmp_path):
  path = tmp_path / "exp.gin"
  path.write_text("include 'runs/infer.gin'\nBATCH_SIZE = 3\n")
  gin.clear_config()
  try:
    gin_flags.parse_gin([str(path)], ["SPLIT = 'validation'"],
                        finalize=False)
    assert gin.query_parameter("%BATCH_SIZE") == 3
    assert gin.query_parameter("%SPLIT") == "validation"
    assert gin.query_parameter("%DECODE_METHOD") == "greedy"
  finally:
    gin.clear_config()


@pytest.fixture(name="clean_gin")
def clean_gin_fixture():
  gin.clear_config()
  yield
  gin.clear_config()


def test_macro_typo_is_an_error_with_a_suggestion(clean_gin):
  del clean_gin
  with pytest.raises(errors.UserError) as info:
    gin_flags.parse_gin(["experiments/sample_tiny.gin"],
                        ["MODEL_DIR = '/tmp/x'", "TRAIN_STEPZ = 5"],
                        finalize=False)
  assert str(info.value) == (
      "unknown gin macro TRAIN_STEPZ (from --gin.TRAIN_STEPZ=5); did you "
      "mean TRAIN_STEPS?")


def test_macro_only_referred_to_may_be_set(clean_gin):
  """runs/train.gin uses %MODEL, which a model file defines."""
  del clean_gin
  gin_flags.parse_gin(["runs/train.gin"], ["MODEL = None"], finalize=False)
  assert gin.query_parameter("%MODEL") is None


def test_unknown_parameter_suggests_the_close_one(clean_gin):
  del clean_gin
  with pytest.raises(errors.UserError, match="did you mean checkpoint_path"):
    gin_flags.parse_gin(["runs/infer.gin"],
                        ["infer.infer.chekpoint_path = '/x'"], finalize=False)


def test_missing_gin_file_and_bad_value_are_user_errors(clean_gin):
  del clean_gin
  with pytest.raises(errors.UserError, match="--gin_file=nope.gin"):
    gin_flags.parse_gin(["nope.gin"])
  with pytest.raises(errors.UserError, match="cannot parse gin binding"):
    gin_flags.parse_gin(["runs/infer.gin"], ["SPLIT = ["], finalize=False)


def test_required_macro_left_unset_is_named(clean_gin):
  del clean_gin
  with pytest.raises(errors.UserError) as info:
    gin_flags.parse_gin(["runs/infer.gin"], ["CHECKPOINT_PATH = '/r'"])
  assert str(info.value).startswith(
      "gin macro MIXTURE_OR_TASK_NAME is required and was not set. Fix: add "
      "--gin.MIXTURE_OR_TASK_NAME=")


def test_deprecated_macros_are_rewritten_with_a_warning(clean_gin, capsys):
  del clean_gin
  gin_flags.parse_gin(
      ["runs/infer.gin"],
      ["OLD_NAME = 'crs_sample_redial_v001'", "OLD_INPUTS = 64"],
      finalize=False,
      deprecated_macros={"OLD_NAME": "MIXTURE_OR_TASK_NAME",
                         "OLD_INPUTS": "TASK_FEATURE_LENGTHS['inputs']"})
  assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == (
      "crs_sample_redial_v001")
  # Only the inputs entry changes; infer.gin's targets length stays.
  assert gin.query_parameter("%TASK_FEATURE_LENGTHS") == {
      "inputs": 64, "targets": 128}
  err = capsys.readouterr().err
  assert "warning: gin macro OLD_NAME is deprecated; use " in err
  assert err.count("\n") == 2
