"""Tests for train/gin_flags.py."""

import gin

from train import gin_flags


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
