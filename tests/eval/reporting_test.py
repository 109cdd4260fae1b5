"""Tests for eval/reporting.py on synthetic metrics JSONs."""

import json
import os

import pytest

from eval import reporting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_metrics(model_dir, step, metrics, mixture=None):
  """Writes `model_dir/eval/<step>/metrics.json` (and a config.gin)."""
  path = os.path.join(model_dir, "eval", str(step))
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "metrics.json"), "w") as f:
    json.dump({"step": step, "metrics": metrics}, f)
  if mixture:
    with open(os.path.join(model_dir, "config.gin"), "w") as f:
      f.write(f"MIXTURE_OR_TASK_NAME = '{mixture}'\nBATCH_SIZE = 8\n")
  return model_dir


def test_load_run_reads_latest_step_and_label_from_config(tmp_path):
  d = str(tmp_path / "m")
  write_metrics(d, 100, {"rec/recall@1": 1.0})
  write_metrics(d, 2000, {"rec/recall@1": 5.0}, mixture="crs_t5cr_v001")
  run = reporting.load_run(d)
  assert (run.step, run.label, run.metrics) == (
      2000, "crs_t5cr_v001", {"rec/recall@1": 5.0})
  assert reporting.load_run(d, step=100).metrics == {"rec/recall@1": 1.0}
  assert reporting.eval_steps(d) == [100, 2000]


def test_load_run_errors_name_file_and_field(tmp_path):
  d = str(tmp_path / "m")
  with pytest.raises(FileNotFoundError, match="no such directory"):
    reporting.load_run(d)
  os.makedirs(d)
  with pytest.raises(FileNotFoundError, match="metrics.json"):
    reporting.load_run(d)
  write_metrics(d, 7, {"rec/recall@1": "high"})
  with pytest.raises(ValueError, match=r"7/metrics.json: field 'metrics.rec/"):
    reporting.load_run(d)
  with pytest.raises(FileNotFoundError, match="evaluated steps"):
    reporting.load_run(d, step=8)


def test_aggregate_mean_and_sample_std():
  runs = [
      reporting.Run("a", "d1", 1, {"x": 10.0, "y": 30.0}),
      reporting.Run("a", "d2", 1, {"x": 12.0, "y": 34.0}),
      reporting.Run("a", "d3", 1, {"x": 14.0}),
      reporting.Run("b", "d4", 1, {"x": 3.0}),
  ]
  groups = reporting.aggregate(runs)
  assert list(groups) == ["a", "b"]
  # x: mean 12, sum of squared deviations 8, ddof=1 -> var 4 -> std 2.
  assert groups["a"]["x"] == reporting.Stat(12.0, 2.0, 3)
  # y: mean 32, deviations +-2 -> var 8 -> std 2.828.
  assert groups["a"]["y"].mean == 32.0
  assert groups["a"]["y"].std == pytest.approx(8 ** 0.5)
  assert groups["b"]["x"] == reporting.Stat(3.0, 0.0, 1)


def test_markdown_table_cells():
  groups = reporting.aggregate([
      reporting.Run("a", "d1", 1, {"rec/recall@10": 10.0, "gen/bleu": 1.0}),
      reporting.Run("a", "d2", 1, {"rec/recall@10": 14.0, "gen/bleu": 2.0}),
      reporting.Run("b", "d3", 1, {"rec/recall@10": 7.5,
                                   "rec/recall@1": 2.0,
                                   "probe/p1/accuracy": 60.0,
                                   "probe/p1/ci_low": 50.0}),
  ])
  table = reporting.markdown_table(groups).splitlines()
  assert table[0] == ("| model | runs | gen/bleu | rec/recall@1 | "
                      "rec/recall@10 | probe/p1/accuracy |")
  assert table[2] == "| a | 2 | 1.50 ± 0.71 | – | 12.00 ± 2.83 | – |"
  assert table[3] == "| b | 1 | – | 2.00 | 7.50 | 60.00 |"


def test_markdown_table_single_run_recall_shows_its_interval():
  groups = reporting.aggregate([
      reporting.Run("a", "d1", 1, {"rank/recall@10": 12.6,
                                   "rank/recall@10/ci_low": 7.6,
                                   "rank/recall@10/ci_high": 19.4}),
      reporting.Run("b", "d2", 1, {"rank/recall@10": 10.0,
                                   "rank/recall@10/ci_low": 5.0,
                                   "rank/recall@10/ci_high": 17.0}),
      reporting.Run("b", "d3", 1, {"rank/recall@10": 14.0,
                                   "rank/recall@10/ci_low": 9.0,
                                   "rank/recall@10/ci_high": 21.0}),
  ])
  table = reporting.markdown_table(groups).splitlines()
  # The bounds are no columns of their own.
  assert table[0] == "| model | runs | rank/recall@10 |"
  assert table[2] == "| a | 1 | 12.60 [7.60, 19.40] |"
  # Several seeds: mean ± std over seeds, as for every metric.
  assert table[3] == "| b | 2 | 12.00 ± 2.83 |"


def test_write_report_table_and_pngs(tmp_path):
  dirs = []
  for i, (mix, r1, r10, acc) in enumerate([
      ("crs_redial_only_v001", 1.0, 10.0, 55.0),
      ("crs_t5cr_v001", 2.0, 20.0, 70.0),
      ("crs_t5cr_v001", 4.0, 24.0, 80.0),
  ]):
    dirs.append(write_metrics(str(tmp_path / f"m{i}"), 50, {
        "rec/recall@1": r1, "rec/recall@10": r10, "rec/recall@50": r10 * 2,
        "probe/ml_sequences/accuracy": acc,
        "probe/ml_sequences/ci_low": acc - 5,
        "probe/ml_sequences/ci_high": acc + 5,
        "probe/ml_sequences/num_pairs": 100.0,
    }, mixture=mix))
  out = str(tmp_path / "report")
  written = reporting.write_report(model_dirs=dirs, output_dir=out)
  assert set(written) == {"report", "probes", "recall"}
  text = open(written["report"]).read()
  # t5cr: recall@1 (2, 4) -> 3 ± 1.41; accuracy (70, 80) -> 75 ± 7.07.
  assert ("| crs_t5cr_v001 | 2 | 3.00 ± 1.41 | 22.00 ± 2.83 | 44.00 ± 5.66 "
          "| 75.00 ± 7.07 |") in text
  assert "| crs_redial_only_v001 | 1 | 1.00 | 10.00 | 20.00 | 55.00 |" in text
  assert "num_pairs" not in text.split("Runs:")[0]
  for kind in ("probes", "recall"):
    with open(written[kind], "rb") as f:
      data = f.read()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_recall_plot_of_a_single_run_with_intervals(tmp_path):
  d = write_metrics(str(tmp_path / "m"), 600, {
      "rank/recall@1": 0.0, "rank/recall@1/ci_low": 0.0,
      "rank/recall@1/ci_high": 2.9, "rank/recall@10": 3.1,
      "rank/recall@10/ci_low": 1.2, "rank/recall@10/ci_high": 7.8})
  written = reporting.write_report(model_dirs=[d],
                                   output_dir=str(tmp_path / "r"))
  with open(written["recall"], "rb") as f:
    assert f.read(8) == PNG_MAGIC
  assert "| m | 1 | 0.00 [0.00, 2.90] | 3.10 [1.20, 7.80] |" in open(
      written["report"]).read()


def test_write_report_labels_override_and_mismatch(tmp_path):
  d = write_metrics(str(tmp_path / "m"), 3, {"gen/bleu": 1.0})
  written = reporting.write_report(
      model_dirs=[d], labels=["mine"], output_dir=str(tmp_path / "r"))
  assert "| mine | 1 | 1.00 |" in open(written["report"]).read()
  assert set(written) == {"report"}  # Nothing to plot.
  with pytest.raises(ValueError, match="2 labels given for 1 model dirs"):
    reporting.write_report(model_dirs=[d], labels=["a", "b"],
                           output_dir=str(tmp_path / "r"))


def _write_pairs(model_dir, step, probe, correct):
  path = os.path.join(model_dir, "eval", str(step), "probe_pairs.jsonl")
  with open(path, "a") as f:
    for i, c in enumerate(correct):
      f.write(json.dumps({"probe": probe, "pair_id": f"{probe}/{i}",
                          "positive": 0.0, "negative": 0.0,
                          "correct": c}) + "\n")


def _probe_metrics(acc):
  return {"probe/recommendation/accuracy": acc,
          "probe/recommendation/ci_low": acc - 5,
          "probe/recommendation/ci_high": acc + 5}


def test_study_tables_oracles_mcnemar_and_curves(tmp_path):
  base, other = str(tmp_path / "base"), str(tmp_path / "seq")
  for step, acc in ((250, 40.0), (500, 45.0)):
    write_metrics(base, step, _probe_metrics(acc))
    write_metrics(other, step, _probe_metrics(acc + 10))
  # 10 pairs: b = 1 (base right only), c = 5 (other right only).
  _write_pairs(base, 500, "recommendation", [True] * 4 + [False] * 6)
  _write_pairs(other, 500, "recommendation",
               [True] * 3 + [False] + [True] * 5 + [False])
  oracles = {"recommendation": {"cooccurrence": {
      "accuracy": 90.0, "ci_low": 85.0, "ci_high": 93.0, "ties": 7,
      "num_pairs": 10}}}
  written = reporting.write_report(
      model_dirs=[base, other], labels=["redial_only", "sequences"],
      output_dir=str(tmp_path / "r"), oracles=oracles,
      baseline="redial_only")
  text = open(written["report"]).read()
  assert "| redial_only | 1 | 45.0 [40.0, 50.0] |" in text
  assert "| oracle: cooccurrence | – | 90.0 [85.0, 93.0] (7 ties) |" in text
  # +40 points = (5 - 1) / 10; p = 2 * (1 + 6) / 64.
  assert "| sequences | +40.0 pts, p = 0.219 (b/c = 1/5) |" in text
  with open(written["curves"], "rb") as f:
    assert f.read(8) == PNG_MAGIC


def test_paired_table_pools_seed_pairs(tmp_path):
  runs = []
  for label, seed, correct in (
      ("base", 0, [True] * 4 + [False] * 6),
      ("aux", 0, [True] * 3 + [False] + [True] * 5 + [False]),  # b=1, c=5
      ("base", 1, [False] * 10),
      ("aux", 1, [True] * 2 + [False] * 8)):  # b=0, c=2
    d = str(tmp_path / f"{label}{seed}")
    write_metrics(d, 10, _probe_metrics(50.0))
    _write_pairs(d, 10, "recommendation", correct)
    runs.append(reporting.load_run(d, label=label))
  table = reporting.paired_table(runs, "base")
  # Pooled: b = 1, c = 7 over 20 items: +30 points, p = 2 * 9 / 256.
  assert ("+40.0 pts, p = 0.219 (b/c = 1/5); +20.0 pts, p = 0.5 (b/c = "
          "0/2); pooled: +30.0 pts, p = 0.0703 (b/c = 1/7)") in table


def test_missing_or_unevaluated_dir_names_eval_main(tmp_path):
  with pytest.raises(reporting.NotEvaluatedError) as e:
    reporting.load_run(str(tmp_path / "nope"))
  assert str(e.value).startswith(f"{tmp_path / 'nope'}: no such directory")
  (tmp_path / "run" / "eval").mkdir(parents=True)
  with pytest.raises(reporting.NotEvaluatedError) as e:
    reporting.load_run(str(tmp_path / "run"))
  assert str(e.value) == (
      f"{tmp_path / 'run'}: not evaluated yet: no {tmp_path / 'run' / 'eval'}"
      "/<step>/metrics.json found. Fix: evaluate it first: python -m "
      "eval.main --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH=\""
      f"'{tmp_path / 'run'}'\"")
  assert sorted(os.listdir(tmp_path / "run")) == ["eval"]  # Nothing made.
