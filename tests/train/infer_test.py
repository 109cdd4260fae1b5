"""Tests for train/infer.py: decoding rows with metadata, JSONL, the CLI."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio.test_utils

from train import checkpointing
from train import infer
from train import inference
from train import model_inputs
from train import models
from train import network

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LENGTHS = {"inputs": 11, "targets": 5}


def test_decode_tokens_stops_at_eos_and_drops_padding():
  vocab = seqio.test_utils.sentencepiece_vocab()
  # 11 = "th", 4 = "e", 1 = EOS; pieces after EOS are ignored.
  assert inference.decode_tokens(vocab, [11, 4, 1, 5, 5]) == "the"
  assert inference.decode_tokens(vocab, [0, 11, 0, 4]) == "the"
  assert inference.decode_tokens(vocab, [1, 11]) == ""


def test_predict_examples_keeps_text_and_metadata(fake_model, toy_task):
  params = nn.meta.unbox(fake_model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (1, 11), "decoder_input_tokens": (1, 5)},
  )["params"])
  rows = infer.predict_examples(
      fake_model, params, task_name=toy_task, split="test",
      task_feature_lengths=LENGTHS, batch_size=4)
  assert len(rows) == 6  # The toy test split; the last batch was padded.
  assert [r["conversation_id"] for r in rows] == [
      f"test-{i}" for i in range(6)]
  assert rows[1]["target_movies"] == ["Heat (1995)", "Up (2009)"]
  assert all(isinstance(r["prediction"], str) for r in rows)
  # Text features are the raw strings, token features are left out.
  assert rows[0]["inputs"].startswith(("this", "is", "a", "test", "cat"))
  assert "inputs_pretokenized" not in rows[0]
  with pytest.raises(ValueError, match="greedy, beam or sample"):
    infer.predict_examples(
        fake_model, params, task_name=toy_task, split="test",
        task_feature_lengths=LENGTHS, decode_method="nucleus")


class _ScoringModel:
  """score = (first encoder token) - (candidate length): easy to check."""

  def __init__(self, vocab):
    self.input_vocabulary = self.output_vocabulary = vocab
    self.shapes = []

  def score_candidates(self, params, encoder_input_tokens, candidate_tokens):
    del params
    self.shapes.append((encoder_input_tokens.shape, candidate_tokens.shape))
    length = (candidate_tokens > 0).sum(-1)
    return encoder_input_tokens[:, :1] - length[None, :]


def test_score_candidates_batches_rows_with_a_bar(capsys):
  vocab = seqio.test_utils.sentencepiece_vocab()
  model = _ScoringModel(vocab)
  candidates = ["a", "this is a test cat", "hot"]
  tokens = inference.candidate_tokens(model, candidates, 6)
  lengths = [min(len(vocab.encode(c)) + 1, 6) for c in candidates]
  # Candidates tokenized once, as targets: EOS kept, cut at 6 tokens.
  assert tokens.shape == (3, 6)
  np.testing.assert_array_equal((tokens > 0).sum(-1), lengths)
  rows = np.array([[10, 4, 1, 0], [20, 1, 0, 0], [7, 7, 1, 0]], np.int32)
  scores = inference.score_candidates(model, None, rows, tokens,
                                      batch_size=2, desc="rank toy")
  np.testing.assert_allclose(
      scores, np.array([10, 20, 7])[:, None] - np.array(lengths)[None, :])
  assert scores.dtype == np.float32
  # A batch of 2, then 1 row padded to a power of two (1).
  assert model.shapes == [((2, 4), (3, 6)), ((1, 4), (3, 6))]
  # The bar counts rows, with their rate.
  err = capsys.readouterr().err
  assert "rank toy: 100%" in err and "3/3" in err and "row/s" in err
  assert inference.score_candidates(
      model, None, rows[:0], tokens, progress=False).shape == (0, 3)


def test_candidate_scorer_scores_the_examples_encoder_rows():
  vocab = seqio.test_utils.sentencepiece_vocab()
  model = _ScoringModel(vocab)
  scorer = inference.CandidateScorer(
      model, None, task_feature_lengths={"inputs": 8, "targets": 6},
      batch_size=4)
  examples = [{"inputs": [10, 4, 1]}, {"inputs": [20, 1]}]
  scores = scorer(examples, ["a", "hot"])
  lengths = [len(vocab.encode(c)) + 1 for c in ("a", "hot")]
  np.testing.assert_allclose(
      scores, np.array([10, 20])[:, None] - np.array(lengths)[None, :])
  # Encoder rows at the inputs length, candidates at the targets length.
  assert model.shapes == [((2, 8), (2, 6))]
  # Stateless: the same call scores again.
  np.testing.assert_allclose(scorer(examples, ["a", "hot"]), scores)
  assert len(model.shapes) == 2


def test_score_targets_and_score_features_agree():
  vocab = seqio.test_utils.sentencepiece_vocab()

  class Model:
    input_vocabulary = output_vocabulary = vocab

    def score_batch(self, params, batch):
      del params
      return -batch["decoder_loss_weights"].sum(-1).astype(np.float32)

  examples = [{"inputs": [3, 1], "targets": [5, 6, 1]},
              {"inputs": [4, 1], "targets": [7, 1]},
              {"inputs": [5, 1], "targets": [1]}]
  lengths = {"inputs": 4, "targets": 4}
  scores = inference.score_targets(Model(), None, examples,
                                   task_feature_lengths=lengths, batch_size=2)
  np.testing.assert_allclose(scores, [-3, -2, -1])
  features = model_inputs.model_features(examples, lengths)
  np.testing.assert_allclose(inference.score_features(
      Model(), None, features, batch_size=2), scores)


def test_format_predictions_shows_input_tail():
  text = infer.format_predictions(
      [{"inputs": "a" * 10 + "END", "targets": "t", "prediction": "p"}],
      max_input_chars=4)
  assert text.splitlines() == [
      "[0] input:      ...aEND", "    target:     t", "    prediction: p"]


def test_write_jsonl(tmp_path):
  path = infer.write_jsonl([{"a": 1}, {"b": "é"}], str(tmp_path / "x.jsonl"))
  with open(path, encoding="utf-8") as f:
    assert [json.loads(l) for l in f] == [{"a": 1}, {"b": "é"}]


def _save_tiny_model(model_dir, vocab=None, vocab_size=32):
  config = network.T5Config(
      vocab_size=vocab_size, emb_dim=16, num_heads=2, num_encoder_layers=1,
      num_decoder_layers=1, head_dim=8, mlp_dim=32,
      mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=False, dtype=jnp.float32)
  vocab = vocab or seqio.test_utils.sentencepiece_vocab()
  model = models.EncoderDecoderModel(network.Transformer(config), vocab, vocab)
  params = nn.meta.unbox(model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (1, 11), "decoder_input_tokens": (1, 5)},
  )["params"])
  checkpointing.save_model_files(str(model_dir), model)
  manager = checkpointing.CheckpointManager(str(model_dir))
  manager.save(3, params=params, opt_state={}, data_position=0)
  manager.close()
  return model, params


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_infer_writes_one_jsonl_per_task(toy_task, tmp_path, method):
  del toy_task
  model, params = _save_tiny_model(tmp_path / "model")
  paths = infer.infer(
      checkpoint_path=str(tmp_path / "model"),
      mixture_or_task_name="trainer_test_toy_mix_v001",
      output_dir=str(tmp_path / "out"), task_feature_lengths=LENGTHS,
      split="test", batch_size=4, decode_method=method, num_beams=2,
      max_examples=3, module=None)
  assert [os.path.basename(p) for p in paths] == [
      "trainer_test_toy_v001-test.jsonl", "trainer_test_toy_v001_b-test.jsonl"]
  with open(paths[0], encoding="utf-8") as f:
    rows = [json.loads(l) for l in f]
  assert [r["conversation_id"] for r in rows] == ["test-0", "test-1", "test-2"]
  assert set(rows[0]) >= {"inputs", "targets", "prediction", "target_movies"}
  if method == "greedy":  # Same as decoding with the model directly.
    direct = infer.predict_examples(
        model, params, task_name="trainer_test_toy_v001", split="test",
        task_feature_lengths=LENGTHS, max_examples=3)
    assert [r["prediction"] for r in rows] == [
        r["prediction"] for r in direct]


def test_infer_command_line(tmp_path, runnable):
  """python -m train.infer with runs/infer.gin on the bundled sample task."""
  from crs_tasks import features  # pylint: disable=g-import-not-at-top
  _save_tiny_model(tmp_path / "model", features.get_vocabulary(), 32128)
  out = tmp_path / "out"
  cmd = [
      sys.executable, "-m", "train.infer", "--gin_file=runs/infer.gin",
      f"--gin.CHECKPOINT_PATH='{tmp_path / 'model'}'",
      "--gin.MIXTURE_OR_TASK_NAME='crs_sample_redial_v001'",
      f"--gin.INFER_OUTPUT_DIR='{out}'", "--gin.MAX_EXAMPLES=3",
      "--gin.TASK_FEATURE_LENGTHS={'inputs': 24, 'targets': 6}",
      "--gin.BATCH_SIZE=2"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                        timeout=600, check=False,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out / "crs_sample_redial_v001-test.jsonl", encoding="utf-8") as f:
    rows = [json.loads(l) for l in f]
  assert len(rows) == 3
  assert {"conversation_id", "target_movies", "prediction"} <= set(rows[0])
  # It ends with where the predictions and the log are, and what next.
  path = out / "crs_sample_redial_v001-test.jsonl"
  lines = proc.stdout.rstrip().splitlines()
  assert lines[-2] == f"Outputs: {path}; log: {out}/logs/infer.log"
  assert lines[-1] == f"next: head -n 1 {path}"
  runnable(lines[-1])
