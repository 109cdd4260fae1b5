"""Real-data skips are visible (tests/conftest.py's hooks).

Each case runs pytest in a subprocess on a one-file suite in a temporary
folder, with tests/conftest.py loaded as a plugin and CRS_SHARED_DATA
pointing at an absent or a present data folder.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

TESTS = pathlib.Path(__file__).resolve().parent

_SUITE = textwrap.dedent("""
    import pytest

    def test_plain():
      pass

    def test_real(shared_data):
      assert shared_data.is_dir()

    def test_real_but_incomplete(shared_data):
      pytest.skip("no movielens/ under the data folder")
    """)


def _run(tmp_path, data_dir, ci):
  (tmp_path / "suite").mkdir(exist_ok=True)
  (tmp_path / "suite" / "pytest.ini").write_text("[pytest]\n")
  (tmp_path / "suite" / "one_test.py").write_text(_SUITE)
  env = dict(os.environ, CRS_SHARED_DATA=str(data_dir), CI=ci,
             PYTHONPATH=os.pathsep.join(
                 [str(TESTS), os.environ.get("PYTHONPATH", "")]))
  return subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "conftest",
       "-p", "no:cacheprovider", "one_test.py"],
      cwd=tmp_path / "suite", capture_output=True, text=True, env=env,
      timeout=300, check=False)


def test_absent_data_ends_with_one_line_counting_the_skips(tmp_path):
  proc = _run(tmp_path, tmp_path / "absent", ci="true")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  lines = proc.stdout.splitlines()
  counts = [line for line in lines if "real-data test" in line]
  assert len(counts) == 1, proc.stdout
  assert counts[0].startswith(
      f"2 real-data tests skipped: no {tmp_path / 'absent'}; "), counts
  assert "CRS_SHARED_DATA" in counts[0] and "ml-latest-small" in counts[0]
  assert "1 passed, 2 skipped" in lines[-1]


def test_under_ci_a_real_data_skip_with_the_data_present_fails(tmp_path):
  data = tmp_path / "data"
  (data / "redial").mkdir(parents=True)
  (data / "redial" / "test_data.jsonl").write_text("{}\n")
  proc = _run(tmp_path, data, ci="true")
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert "2 passed" in proc.stdout.splitlines()[-1]
  assert "1 failed" in proc.stdout.splitlines()[-1]
  assert (f"CI=true and {data} is present, but this real-data test "
          "skipped: no movielens/ under the data folder") in proc.stdout
  assert "real-data tests skipped" not in proc.stdout
  # Outside CI the same skip is only a skip.
  proc = _run(tmp_path, data, ci="")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "2 passed, 1 skipped" in proc.stdout.splitlines()[-1]
