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
from train import models
from train import network

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LENGTHS = {"inputs": 11, "targets": 5}


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
  with pytest.raises(ValueError, match="greedy, beam, sample, got .nucleus."):
    infer.predict_examples(
        fake_model, params, task_name=toy_task, split="test",
        task_feature_lengths=LENGTHS, decode_method="nucleus")


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
