"""Tests of eval/probes/probe_lib.py (hand-computed accuracies and CIs)."""

import json
import os
import threading
import time

import numpy as np
import pytest

from crs_runtime import errors

from crs_tasks import features
from crs_tasks import probes as probe_tasks
from eval.probes import probe_lib

Z95 = 1.959963984540054  # Normal 97.5% quantile.


def _examples(n=4, name="recommendation"):
  return [
      {
          "probe": name,
          "inputs": f"q{i}",
          "targets": f"good{i}",
          "negative_targets": f"bad{i}",
      }
      for i in range(n)
  ]


def test_pair_metrics_all_correct_and_ties():
  metrics = probe_lib.pair_metrics(
      "attribute", [-1.0, -2.0, -3.0, -1.0], [-5.0, -2.0, -4.0, -9.0]
  )
  # The tie (-2 vs -2) counts as correct (">=").
  assert metrics == {
      "probe/attribute/accuracy": 100.0,
      "probe/attribute/ci_low": pytest.approx(100 * 4 / (4 + Z95**2)),
      "probe/attribute/ci_high": 100.0,
      "probe/attribute/num_pairs": 4.0,
  }


def test_pair_metrics_half_correct():
  metrics = probe_lib.pair_metrics("x", [0, 0, -1, -1], [-1, -1, 0, 0])
  assert metrics["probe/x/accuracy"] == 50.0
  # Symmetric around 50% when p = 0.5.
  assert metrics["probe/x/ci_low"] + metrics["probe/x/ci_high"] == (
      pytest.approx(100.0)
  )


def test_pair_metrics_errors():
  with pytest.raises(ValueError, match="2 positive but 3 negative"):
    probe_lib.pair_metrics("x", [0, 0], [0, 0, 0])
  with pytest.raises(ValueError, match="no pairs"):
    probe_lib.pair_metrics("x", [], [])
  with pytest.raises(ValueError, match="non-finite.*pair 1"):
    probe_lib.pair_metrics("x", [0, np.nan], [0, 0])


def test_score_probe_with_fake_scorers():
  examples = _examples(5)
  calls = []

  def prefers_correct(inputs, targets):
    calls.append(len(inputs))
    return np.array([0.0 if t.startswith("good") else -3.0 for t in targets])

  metrics = probe_lib.score_probe(prefers_correct, examples)
  assert calls == [10]  # One call for both replies of every pair.
  assert metrics["probe/recommendation/accuracy"] == 100.0
  assert metrics["probe/recommendation/num_pairs"] == 5.0

  def prefers_negative(inputs, targets):
    return [-3.0 if t.startswith("good") else 0.0 for t in targets]

  metrics = probe_lib.score_probe(prefers_negative, examples, name="other")
  assert metrics["probe/other/accuracy"] == 0.0
  assert metrics["probe/other/ci_low"] == 0.0


def test_pair_scores_align_inputs():
  seen = []

  def score_fn(inputs, targets):
    seen.extend(zip(inputs, targets))
    return np.arange(len(inputs), dtype=np.float32)

  pos, neg = probe_lib.pair_scores(score_fn, _examples(2))
  assert seen == [
      ("q0", "good0"),
      ("q1", "good1"),
      ("q0", "bad0"),
      ("q1", "bad1"),
  ]
  np.testing.assert_array_equal(pos, [0, 1])
  np.testing.assert_array_equal(neg, [2, 3])
  with pytest.raises(ValueError, match="returned 3 scores for 4"):
    probe_lib.pair_scores(lambda i, t: np.zeros(3), _examples(2))
  with pytest.raises(ValueError, match="example 0: missing.*negative"):
    probe_lib.pair_scores(score_fn, [{"inputs": "a", "targets": "b"}])


def test_probe_name_must_be_shared():
  with pytest.raises(ValueError, match="share one"):
    probe_lib.score_probe(
        lambda i, t: np.zeros(len(i)), _examples(1, "a") + _examples(1, "b")
    )


def _write(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_load_probe_examples_skips_and_reports_bad_lines(tmp_path,
                                                        capsys):
  path = tmp_path / "attribute.jsonl"
  _write(path, _examples(3, "attribute"))
  assert probe_lib.load_probe_examples(str(path)) == _examples(3, "attribute")
  assert capsys.readouterr().err == ""
  good = _examples(2, "attribute")
  no_targets = dict(good[1])
  del no_targets["targets"]
  path.write_bytes(b"".join([
      json.dumps(good[0]).encode() + b"\n",
      json.dumps(no_targets).encode() + b"\n",
      b"{not json\n",
      b"[1, 2]\n",
      b'{"probe": "caf\xe9"}\n',
      json.dumps(good[1]).encode() + b"\n"]))
  assert probe_lib.load_probe_examples(str(path)) == good
  assert capsys.readouterr().err == (
      f"warning: skipped 4 malformed lines of {path}: line 2: field "
      "'targets': missing or not a string; line 3: invalid JSON (Expecting "
      "property name enclosed in double quotes: line 1 column 2 (char 1)); "
      "line 4: not a JSON object; line 5: not valid UTF-8 (byte 0xe9 at "
      "column 15)\n")
  with pytest.raises(FileNotFoundError, match="crs_tasks.build_probes"):
    probe_lib.load_probe_examples(str(tmp_path / "missing.jsonl"))
  # No valid line at all: a user's mistake (one `error:` line), the fix.
  path.write_bytes(b'{"probe": "caf\xe9"}\n')
  with pytest.raises(errors.UserError, match=(
      r"attribute.jsonl: no valid line \(.*\)\. Fix: rebuild the probe "
      r"files")):
    probe_lib.load_probe_examples(str(path))


def _full(n, name):
  """Probe rows with every field the probe Tasks read."""
  return [dict(ex, pair_id=f"{name}/{i}", query_movie="", positive_movie="",
               negative_movie="", tag="")
          for i, ex in enumerate(_examples(n, name))]


def test_load_probes_reads_through_the_task_and_skips_missing(tmp_path):
  vocab = features.get_vocabulary()
  rows = _full(3, "attribute")
  rows[1]["negative_targets"] = "a reply far longer than " + "x " * 80
  _write(tmp_path / "attribute.jsonl", rows)
  environment = os.environ.get("CRS_PROBES_DIR")
  probes = probe_lib.load_probes(str(tmp_path), max_pairs=2)
  assert list(probes) == ["attribute"]  # No other file: skipped.
  probe = probes["attribute"]
  assert probe.name == "attribute" and len(probe.examples) == 2
  # The Task's tokens: text + EOS, nothing cut.
  encode = lambda text: list(vocab.encode(text)) + [1]
  assert probe.examples[0]["inputs"] == encode("q0")
  assert probe.examples[0]["targets"] == encode("good0")
  assert probe.examples[1]["pair_id"] == "attribute/1"
  assert probe.negatives[1] == tuple(encode(rows[1]["negative_targets"]))
  assert probe.lengths == {"inputs": len(encode("q0")),
                           "targets": len(encode(rows[1]["negative_targets"]))}
  assert probe.lengths["targets"] > 64
  model_rows = probe.model_examples()
  assert [r["targets"] for r in model_rows] == [
      encode("good0"), encode("good1"), encode("bad0"),
      encode(rows[1]["negative_targets"])]
  # The environment the Task reads is left as it was.
  assert os.environ.get("CRS_PROBES_DIR") == environment


def test_load_probes_from_two_threads_reads_each_ones_folder(
    tmp_path, monkeypatch):
  """`$CRS_PROBES_DIR` is process-wide: concurrent loads take turns. The
  Task reads the variable after a pause here, so without the turns the
  other thread would have pointed it at its own folder by then."""
  read_folder = probe_tasks.probes_dir

  def slow_probes_dir():
    time.sleep(0.2)
    return read_folder()

  monkeypatch.setattr(probe_tasks, "probes_dir", slow_probes_dir)
  folders = {}
  for n in (2, 3):
    folders[n] = tmp_path / f"probes{n}"
    folders[n].mkdir()
    _write(folders[n] / "attribute.jsonl", _full(n, "attribute"))
  counts = {2: [], 3: []}

  def load(n):
    for _ in range(4):
      counts[n].append(len(probe_lib.load_probes(
          str(folders[n]))["attribute"].examples))

  threads = [threading.Thread(target=load, args=(n,)) for n in (2, 3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert counts == {2: [2] * 4, 3: [3] * 4}


def test_load_probes_skips_a_bad_line_and_stops_on_a_file_without_one(
    tmp_path, capsys):
  rows = _full(2, "attribute")
  del rows[1]["targets"]
  _write(tmp_path / "attribute.jsonl", rows)
  probe = probe_lib.load_probes(str(tmp_path))["attribute"]
  assert [ex["pair_id"] for ex in probe.examples] == ["attribute/0"]
  assert "skipped 1 malformed line of" in capsys.readouterr().err
  _write(tmp_path / "attribute.jsonl", rows[1:])
  with pytest.raises(errors.UserError, match=r"attribute.jsonl: no valid line"):
    probe_lib.load_probes(str(tmp_path))


def test_probe_metrics_are_pure():
  probe = probe_lib.ProbeSet(
      "p", tuple({"inputs": [1], "targets": [1], "pair_id": f"p/{i}"}
                 for i in range(4)), ((1,),) * 4)
  scalars, rows = probe_lib.probe_metrics(probe, [0, 0, -1, -2],
                                          [-1, 0, 0, -3])
  # Pairs 0, 1 (a tie) and 3 right; 2 wrong.
  assert scalars["probe/p/accuracy"] == 75.0
  assert scalars["probe/p/num_pairs"] == 4.0
  assert [r["correct"] for r in rows] == [True, True, False, True]
  assert rows[2] == {"probe": "p", "pair_id": "p/2", "positive": -1.0,
                     "negative": 0.0, "correct": False}
