"""Tests of eval/probes/main.py (score a fake checkpoint, baselines)."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from crs_tasks import build_probes
from crs_tasks import features
from crs_tasks import movie_relatedness
from crs_tasks import probes
from crs_tasks import probe_builders as builders
from eval import evaluation
from eval.probes import main
from eval.probes import probe_lib


def _run(**flag_values):
  flags.FLAGS.mark_as_parsed()
  with flagsaver.flagsaver(**flag_values):
    main.main(["main"])


class _ShortTargetModel:
  """score_batch = -(target length): prefers the shorter reply."""

  input_vocabulary = output_vocabulary = features.get_vocabulary()

  def score_batch(self, params, batch):
    del params
    return -np.sum(batch["decoder_loss_weights"], axis=1).astype(np.float32)


def test_score_writes_metrics(tmp_path, monkeypatch, capsys, runnable):
  monkeypatch.setattr(
      main.checkpointing,
      "load_model",
      lambda model_dir, step=None: (_ShortTargetModel(), {}, 7),
  )
  output = tmp_path / "probes.json"
  _run(
      probe_dir=probes.SAMPLE_PROBES_DIR,
      checkpoint_path=str(tmp_path),
      probes=["attribute", "description"],
      output=str(output),
  )
  metrics = json.loads(output.read_text())
  assert metrics["step"] == 7.0
  # Expected accuracy from the token lengths, computed here.
  vocab = features.get_vocabulary()
  for name in ("attribute", "description"):
    examples = probe_lib.load_probe_examples(
        os.path.join(probes.SAMPLE_PROBES_DIR, f"{name}.jsonl")
    )
    right = [  # Nothing is cut: each probe at the lengths it needs.
        len(vocab.encode(ex["targets"])) <= len(
            vocab.encode(ex["negative_targets"]))
        for ex in examples
    ]
    assert metrics[f"probe/{name}/accuracy"] == pytest.approx(
        100 * np.mean(right))
    assert metrics[f"probe/{name}/num_pairs"] == len(examples)
  out = capsys.readouterr().out
  assert "probe/attribute/accuracy" in out
  # Ends with the metrics file and the full evaluation with these probes.
  lines = out.rstrip().splitlines()
  assert lines[-2] == f"Outputs: {output}"
  assert lines[-1] == (
      "next: python -m eval.main --gin_file=gin/runs/eval.gin "
      f"--gin.CHECKPOINT_PATH=\"'{tmp_path}'\" "
      f"--gin.PROBE_DIR=\"'{probes.SAMPLE_PROBES_DIR}'\"")
  runnable(lines[-1])


def test_probe_numbers_equal_those_of_eval_main(tmp_path, monkeypatch):
  """`eval.probes.main` and `eval.main` (`evaluation.evaluate`) score the
  probes the same way: the same Tasks, lengths and numbers, whatever the
  evaluation's TASK_FEATURE_LENGTHS (here shorter than the replies)."""
  model = _LengthSensitiveModel()
  monkeypatch.setattr(main.checkpointing, "load_model",
                      lambda model_dir, step=None: (model, {}, 7))
  names = ["description", "recommendation"]
  alone = main.score(probe_dir=probes.SAMPLE_PROBES_DIR,
                     model_dir=str(tmp_path), step=None, probes=names,
                     batch_size=32)
  full = evaluation.evaluate(
      model=model, params={}, vocabulary=model.output_vocabulary, tasks=[],
      output_dir=str(tmp_path / "eval"), task_feature_lengths={"inputs": 8, "targets": 4}, 
      batch_size=5, probes=probe_lib.load_probes(probes.SAMPLE_PROBES_DIR,
                                                 names=names))
  for name in names:
    for key in ("accuracy", "ci_low", "ci_high", "num_pairs"):
      assert alone[f"probe/{name}/{key}"] == full[f"probe/{name}/{key}"]
  # The description replies are longer than 4 tokens: they were not cut.
  assert model.longest > 4


class _LengthSensitiveModel(_ShortTargetModel):
  """Prefers the shorter reply; records the longest target it saw."""

  longest = 0

  def score_batch(self, params, batch):
    self.longest = max(self.longest,
                       int(batch["decoder_loss_weights"].sum(-1).max()))
    return super().score_batch(params, batch)


def test_needs_an_action():
  with pytest.raises(Exception, match="--popularity_baseline and/or --oracles"):
    _run()


def test_popularity_baseline_on_the_sample(capsys, runnable):
  sample_ml = os.path.join(builders.SAMPLE_DATA_DIR, "movielens")
  _run(probe_dir=probes.SAMPLE_PROBES_DIR, popularity_baseline=True,
       movielens_dir=sample_ml, probes=["recommendation"])
  out = capsys.readouterr().out
  # Recomputed here from the builders' own popularity: pairs where the
  # correct movie is at least as popular as the negative.
  data = builders.load_probe_data(sample_ml)
  pop = movie_relatedness.cooccurrence(data.sequences).popularity
  by_title = {data.movies[m].title.lower(): n for m, n in pop.items()}
  examples = probe_lib.load_probe_examples(
      os.path.join(probes.SAMPLE_PROBES_DIR, "recommendation.jsonl"))
  right = [by_title.get(ex["positive_movie"], 0)
           >= by_title.get(ex["negative_movie"], 0) for ex in examples]
  expected = 100 * np.mean(right)
  assert f"popularity probe/recommendation/accuracy: {expected:.4f}" in out
  assert expected < 50.0  # negatives are popular movies
  # No checkpoint yet: train the sample model, then score it.
  lines = out.rstrip().splitlines()
  assert lines[-3] == "Outputs: none written (the metrics are above)"
  assert lines[-2] == ("next: python -m train.main --gin_file=gin/experiments/"
                       "sample_tiny.gin --gin.MODEL_DIR=\"'/tmp/t5cr_sample'\"")
  runnable(lines[-2])
  assert lines[-1] == ("next: python -m eval.probes.main --probe_dir="
                       f"{probes.SAMPLE_PROBES_DIR} "
                       "--checkpoint_path=/tmp/t5cr_sample")


def test_deprecated_model_dir_flag_still_scores(tmp_path, monkeypatch,
                                                capsys):
  loaded = []
  monkeypatch.setattr(
      main.checkpointing, "load_model",
      lambda path, step=None: loaded.append(path) or (
          _ShortTargetModel(), {}, 7))
  _run(probe_dir=probes.SAMPLE_PROBES_DIR, model_dir=str(tmp_path),
       probes=["attribute"])
  assert loaded == [str(tmp_path)]
  captured = capsys.readouterr()
  assert captured.err == (
      "warning: --model_dir is deprecated; use --checkpoint_path\n")
  assert "probe/attribute/accuracy" in captured.out


def test_oracles_on_the_sample(tmp_path, capsys):
  """`--oracles` writes oracles.json beside the probes it scores."""
  build_probes.build(build_dir=str(tmp_path), movielens_dir=None,
                     sample=True)
  _run(probe_dir=str(tmp_path), oracles=True,
       movielens_dir=os.path.join(builders.SAMPLE_DATA_DIR, "movielens"))
  out = capsys.readouterr().out
  rows = json.loads((tmp_path / "oracles.json").read_text())
  assert set(rows["recommendation"]) == {
      "task_conditional", "cooccurrence", "pmi2", "popularity"}
  assert set(rows["attribute"]) == {"popularity"}
  assert rows["recommendation_in_format"] == rows["recommendation"]
  row = rows["recommendation"]["pmi2"]
  assert 0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 100
  assert row["num_pairs"] == 100
  assert "oracle pmi2 probe/recommendation/accuracy" in out
