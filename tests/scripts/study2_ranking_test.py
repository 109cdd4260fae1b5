"""Tests for scripts/study2_ranking.py's paired tests of ranking hits."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _script():
  spec = importlib.util.spec_from_file_location(
      "study2_ranking", os.path.join(ROOT, "scripts", "study2_ranking.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _write_run(out, mixture, seed, ranks):
  """One run's ranking predictions: example i, title t{i}, its rank."""
  run = out / f"{mixture}_pt_s{seed}" / "eval_rank" / "1500"
  run.mkdir(parents=True)
  with open(run / "predictions.jsonl", "w", encoding="utf-8") as f:
    for i, rank in enumerate(ranks):
      f.write(json.dumps({"index": i, "label_ranks": {
          "rank": {f"t{i}": rank}, "rank_dedup": {f"t{i}": rank}}}) + "\n")
    f.write(json.dumps({"index": len(ranks)}) + "\n")  # Not ranked.


def test_paired_table_is_mcnemar_of_hits_against_redial_only(tmp_path):
  script = _script()
  # hits@10: redial_only 1 1 0 0 0 0, redial_sequences 1 0 1 1 1 0:
  # b (only redial_only) = 1, c (only sequences) = 3, so the exact
  # two-sided p = 2 * (C(4,0) + C(4,1)) / 2^4 = 0.625; +2/6 = +33.3 points.
  # At 50 both hit all six: b = c = 0, p = 1.
  _write_run(tmp_path, "redial_only", 0, [1, 10, 11, 40, 50, 50])
  _write_run(tmp_path, "redial_sequences", 0, [3, 12, 2, 9, 10, 30])
  ranks = script.run_label_ranks(str(tmp_path), 1500, ["0"])
  assert set(ranks) == {("redial_only", "0"), ("redial_sequences", "0")}
  assert ranks[("redial_only", "0")][("rank", 1, "t1")] == 10
  table = script.paired_table(ranks, ["0"]).splitlines()
  assert table[0].startswith("| vs redial_only | R@10 | R@50 |")
  assert table[2] == ("| redial_sequences | "
                      "s0: +33.3 pts, p = 0.625 (b/c = 1/3) | "
                      "s0: +0.0 pts, p = 1 (b/c = 0/0) | "
                      "s0: +33.3 pts, p = 0.625 (b/c = 1/3) | "
                      "s0: +0.0 pts, p = 1 (b/c = 0/0) |")
  # Mixtures without runs get a dash, not a made-up test.
  assert table[3] == "| redial_tags | - | - | - | - |"
