"""Tests for scripts/study2_precision.py (hand-computed cells)."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "study2_precision", os.path.join(ROOT, "scripts", "study2_precision.py"))
study2_precision = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study2_precision)


def test_criterion_is_the_gap_against_the_seed_spread():
  r = study2_precision.criterion(40.0, 38.0, 41.5)
  assert r["precision_gap"] == 1.5 and r["seed_spread"] == 2.0
  assert r["passes"]
  assert not study2_precision.criterion(40.0, 39.5, 41.0)["passes"]


def test_paired_counts_only_pairs_both_runs_scored(tmp_path):
  f32 = {"a": True, "b": True, "c": False, "d": False, "e": True}
  mixed = {"a": True, "b": False, "c": True, "d": True, "x": True}
  t = study2_precision.paired(f32, mixed)
  # Shared a-d: mixed alone right on c, d (b = 2); f32 alone on b (c = 1).
  assert (t["pairs"], t["b"], t["c"]) == (4, 2.0, 1.0)
  assert t["difference"] == 25.0
  assert t["p_value"] == 1.0  # 2 * P(X <= 1 | n = 3) = 2 * 4/8, capped


def test_read_pairs_groups_by_probe(tmp_path):
  d = tmp_path / "redial_only_pt_s0" / "eval" / "1500"
  d.mkdir(parents=True)
  rows = [{"probe": "attribute", "pair_id": "attribute/0", "correct": True},
          {"probe": "recommendation", "pair_id": "recommendation/0",
           "correct": False}]
  (d / "probe_pairs.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in rows))
  assert study2_precision.read_pairs(str(tmp_path), "redial_only", 0,
                                     1500) == {
      "attribute": {"attribute/0": True},
      "recommendation": {"recommendation/0": False}}
