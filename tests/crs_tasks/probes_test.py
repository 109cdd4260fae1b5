"""Tests of the probe Task registrations (crs_tasks/probes.py)."""

import json

import numpy as np
import pytest
import seqio

import crs_tasks  # pylint: disable=unused-import
from crs_tasks import features
from crs_tasks import probes
from crs_tasks import probe_builders as builders
from crs_tasks import probe_io

EXAMPLE = {
    "probe": "recommendation",
    "pair_id": "recommendation/000000",
    "inputs": (
        "redial conversation: [user] can you recommend me a movie like "
        "@ heat (1995) @?"
    ),
    "targets": "sure, have you seen @ ronin (1998) @?",
    "negative_targets": "sure, have you seen @ up (2009) @?",
    "query_movie": "heat (1995)",
    "positive_movie": "ronin (1998)",
    "negative_movie": "up (2009)",
    "tag": "",
}


def _first(task_name, n=None):
  task = seqio.get_mixture_or_task(task_name)
  ds = task.get_dataset(None, split="validation", shuffle=False)
  return [{k: v.numpy() for k, v in ex.items()} for ex in ds.take(n or -1)]


def test_registered_names():
  names = set(seqio.TaskRegistry.names())
  expected = {
      f"{p}_{n}_v001"
      for p in ("probe", "probe_sample")
      for n in probe_io.ALL_PROBE_NAMES
  }
  assert expected <= names
  assert {n for n in names if n.startswith("probe")} == expected


def test_constants_match_builders():
  assert probe_io.ALL_PROBE_NAMES == probe_io.PROBE_NAMES + (
      "recommendation_in_format", "attribute_in_format")
  assert probe_io.PROBE_FIELDS == probe_io.PROBE_FIELDS


def test_full_task_reads_probes_dir_exactly(tmp_path, monkeypatch):
  (tmp_path / "recommendation.jsonl").write_text(json.dumps(EXAMPLE) + "\n")
  monkeypatch.setenv(probe_io.PROBES_DIR_ENV, str(tmp_path))
  (ex,) = _first("probe_recommendation_v001")
  vocab = features.get_vocabulary()
  assert ex["inputs_pretokenized"].decode() == EXAMPLE["inputs"]
  assert ex["targets_pretokenized"].decode() == EXAMPLE["targets"]
  np.testing.assert_array_equal(
      ex["inputs"], list(vocab.encode(EXAMPLE["inputs"])) + [1]
  )
  np.testing.assert_array_equal(
      ex["targets"], list(vocab.encode(EXAMPLE["targets"])) + [1]
  )
  for field in (
      "negative_targets",
      "query_movie",
      "positive_movie",
      "negative_movie",
      "tag",
      "probe",
      "pair_id",
  ):
    assert ex[field].decode() == EXAMPLE[field], field
  assert not any(k.startswith("decoder_") for k in ex)


def test_missing_and_bad_files(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(probe_io.PROBES_DIR_ENV, str(tmp_path))
  with pytest.raises(FileNotFoundError, match="attribute.jsonl not found"):
    _first("probe_attribute_v001")
  with pytest.raises(ValueError, match="only 'validation'"):
    probes.probe_dataset("train", name="attribute", sample=True)
  # Bad lines (a missing field, bad bytes) are skipped and reported.
  bad = dict(EXAMPLE)
  del bad["negative_targets"]
  path = tmp_path / "attribute.jsonl"
  path.write_bytes(json.dumps(bad).encode() + b"\n" +
                   b'{"probe": "\xff"}\n' + json.dumps(EXAMPLE).encode())
  assert [ex["pair_id"].decode() for ex in _first("probe_attribute_v001")] == [
      EXAMPLE["pair_id"]]
  assert capsys.readouterr().err == (
      f"warning: skipped 2 malformed lines of {path}: line 1: field "
      "'negative_targets': missing or not a string; line 2: not valid UTF-8 "
      "(byte 0xff at column 12)\n")
  # A file with no valid line stops with one line.
  path.write_bytes(b'{"probe": "\xff"}\n')
  with pytest.raises(
      ValueError,
      match=r"attribute.jsonl: no valid line \(skipped 1 malformed line of "
      r".*attribute.jsonl: line 1: not valid UTF-8 \(byte 0xff at column "
      r"12\)\)\. Fix: rebuild the probe files"):
    _first("probe_attribute_v001")


@pytest.mark.parametrize("name", probe_io.ALL_PROBE_NAMES)
def test_sample_tasks_match_bundled_files(name):
  path = f"{probes.SAMPLE_PROBES_DIR}/{name}.jsonl"
  with open(path) as f:
    lines = [json.loads(line) for line in f]
  examples = _first(f"probe_sample_{name}_v001")
  assert len(examples) == len(lines) > 0
  assert examples[0]["inputs_pretokenized"].decode() == lines[0]["inputs"]
  assert examples[0]["negative_targets"].decode() == (
      lines[0]["negative_targets"]
  )
  prefix = {"recommendation_in_format": "movielens sequence: @ ",
            "attribute_in_format": "movielens tags: "}.get(
                name, "redial conversation: [user] ")
  assert lines[0]["inputs"].startswith(prefix)
  for line in lines:
    assert line["targets"] != line["negative_targets"]
    assert line["inputs"] == line["inputs"].lower()


def test_in_format_pair_literal_strings_and_tokens(tmp_path, monkeypatch):
  """The recommendation pair above, in the ML-sequences task's format."""
  twin = builders.in_format(EXAMPLE, "recommendation_in_format")
  assert twin["probe"] == "recommendation_in_format"
  assert twin["pair_id"] == EXAMPLE["pair_id"]
  assert twin["inputs"] == "movielens sequence: @ heat (1995) @"
  assert twin["targets"] == "@ ronin (1998) @"
  assert twin["negative_targets"] == "@ up (2009) @"
  (tmp_path / "recommendation_in_format.jsonl").write_text(
      json.dumps(twin) + "\n")
  monkeypatch.setenv(probe_io.PROBES_DIR_ENV, str(tmp_path))
  (ex,) = _first("probe_recommendation_in_format_v001")
  vocab = features.get_vocabulary()
  np.testing.assert_array_equal(
      ex["inputs"], list(vocab.encode("movielens sequence: @ heat (1995) @"))
      + [1])
  np.testing.assert_array_equal(
      ex["targets"], list(vocab.encode("@ ronin (1998) @")) + [1])


def test_in_format_attribute_uses_the_tags_task_format():
  pair = dict(EXAMPLE, probe="attribute", query_movie="", tag="heist",
              inputs="redial conversation: [user] can you recommend me a "
              "heist movie?")
  twin = builders.in_format(pair, "attribute_in_format")
  assert twin["inputs"] == "movielens tags: heist"
  assert twin["targets"] == "@ ronin (1998) @"
  assert twin["negative_targets"] == "@ up (2009) @"
  with pytest.raises(ValueError, match="rereads 'attribute'"):
    builders.in_format(EXAMPLE, "attribute_in_format")


def test_bundled_in_format_files_reread_the_dialogue_pairs():
  """Same pair ids and movies in both readings of the bundled sample."""
  for name, source in probe_io.IN_FORMAT_PROBES.items():
    dialogue = probes.probe_io.read_probe_jsonl(
        f"{probes.SAMPLE_PROBES_DIR}/{source}.jsonl")
    twins = probes.probe_io.read_probe_jsonl(
        f"{probes.SAMPLE_PROBES_DIR}/{name}.jsonl")
    assert len(twins) == len(dialogue) == 100
    for d, t in zip(dialogue, twins):
      assert t == builders.in_format(d, name)
