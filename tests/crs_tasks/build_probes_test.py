"""Tests of crs_tasks/build_probes.py (the command that builds the probes)."""

import json
import os
import subprocess
import sys

from absl import app
import pytest

from crs_tasks import build_probes
from crs_tasks import probe_builders as builders
from crs_tasks import probe_io
from crs_tasks import probes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_build_sample_reproduces_bundled_files(tmp_path):
  counts, movielens_dir = build_probes.build(
      build_dir=str(tmp_path), movielens_dir=None, sample=True)
  assert counts["recommendation/pairs"] == 100
  assert movielens_dir == os.path.join(builders.SAMPLE_DATA_DIR, "movielens")
  for name in probe_io.ALL_PROBE_NAMES:  # The in-format twins too.
    with open(os.path.join(probes.SAMPLE_PROBES_DIR, f"{name}.jsonl")) as f:
      bundled = f.read()
    assert (tmp_path / f"{name}.jsonl").read_text() == bundled, (
        f"{name}.jsonl is stale: rebuild with `python -m "
        "crs_tasks.build_probes --sample "
        "--build_dir=crs_tasks/sample_data/probes`")


def test_build_needs_a_movielens_dir(tmp_path):
  with pytest.raises(app.UsageError, match="--movielens_dir or --sample"):
    build_probes.build(build_dir=str(tmp_path), movielens_dir=None)


def test_command_ends_with_outputs_and_the_baseline(tmp_path, runnable):
  """`python -m crs_tasks.build_probes --sample` as a user runs it."""
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, "-m", "crs_tasks.build_probes", "--sample",
       f"--build_dir={tmp_path}", "--probes=recommendation"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.rstrip().splitlines()
  assert json.loads("\n".join(lines[:lines.index("")]))[
      "recommendation/pairs"] == 100
  assert lines[-2].startswith(
      f"Outputs: {tmp_path} (recommendation.jsonl, "
      "recommendation_in_format.jsonl); log: ")
  # The log moved into the build dir: TensorFlow's lines are not on stderr.
  assert os.path.isfile(tmp_path / "logs" / "build_probes.log")
  sample_ml = os.path.join(builders.SAMPLE_DATA_DIR, "movielens")
  assert lines[-1] == (f"next: python -m eval.probes.main --probe_dir="
                       f"{tmp_path} --popularity_baseline "
                       f"--movielens_dir={sample_ml}")
  runnable(lines[-1])


def test_missing_build_dir_is_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, "-m", "crs_tasks.build_probes", "--sample"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: flag --build_dir=None: Flag --build_dir must have a value "
      "other than None."]
