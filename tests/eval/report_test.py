"""Runs the `eval.report` entry point as a subprocess."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_report_entry_point(tmp_path, runnable):
  dirs = []
  for i, recall in enumerate([10.0, 20.0]):
    d = tmp_path / f"m{i}"
    (d / "eval" / "9").mkdir(parents=True)
    (d / "eval" / "9" / "metrics.json").write_text(json.dumps({
        "step": 9,
        "metrics": {"rec/recall@1": recall, "rec/recall@10": 2 * recall,
                    "probe/tags/accuracy": 60.0 + i,
                    "probe/tags/ci_low": 55.0, "probe/tags/ci_high": 66.0},
    }))
    dirs.append(str(d))
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "eval.report", "--model_dirs=" + ",".join(dirs),
       "--labels=seedy,seedy", f"--output_dir={out}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr
  report = (out / "report.md").read_text()
  # recall@1 (10, 20): mean 15, sample std sqrt(50) = 7.07.
  assert ("| seedy | 2 | 15.00 ± 7.07 | 30.00 ± 14.14 | 60.50 ± 0.71 |"
          in report)
  for png in ("probes.png", "recall_at_k.png"):
    data = (out / png).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
  # It ends with where the files are and the command that shows the report.
  lines = proc.stdout.rstrip().splitlines()
  assert lines[-2] == (f"Outputs in {out}: report.md, probes.png, "
                       f"recall_at_k.png; log: {out}/logs/report.log")
  assert lines[-1] == f"next: cat {out / 'report.md'}"
  runnable(lines[-1])


def test_report_labels_must_match_the_dirs(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "eval.report", "--model_dirs=/a,/b",
       "--labels=one", f"--output_dir={tmp_path}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 2
  assert proc.stderr == ("error: 1 --labels given for 2 --model_dirs; give "
                         "one label per dir\n")


def test_report_on_a_dir_without_evaluations_creates_nothing(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  proc = subprocess.run(
      [sys.executable, "-m", "eval.report", f"--model_dirs={run}",
       f"--output_dir={run}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 2
  assert proc.stderr.startswith(f"error: {run}: not evaluated yet: ")
  assert "Fix: evaluate it first: python -m eval.main " in proc.stderr
  assert proc.stderr.count("\n") == 1
  assert not list(run.iterdir())  # No logs/, no report.
