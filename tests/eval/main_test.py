"""Tests for the `eval.main` gin entry point."""

import json
import os
import pathlib
import subprocess
import sys

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio
import tensorflow as tf

from crs_runtime import errors
from crs_tasks import features
from crs_tasks import postprocessors
from eval import main as main_lib
from train import checkpointing
from train import inference
from train import models
from train import network

ROOT = pathlib.Path(__file__).resolve().parents[2]
TASK = "test_eval_main_toy_v001"
VOCAB = features.get_vocabulary()
REPLY = "@ heat (1995) @"


def _dataset_fn(split, shuffle_files, seed=None):
  del split, shuffle_files, seed
  return tf.data.Dataset.from_tensor_slices({
      "inputs": ["redial conversation: [user] a heist film?",
                 "redial conversation: [user] a space film?"],
      "targets": ["@ heat (1995) @", "@ alien (1979) @"],
      "target_movies": [["heat (1995)"], ["alien (1979)"]],
      "seeker_movies": [["ronin (1998)"], ["ronin (1998)"]],
      "recommender_movies": [["heat (1995)"], ["alien (1979)"]],
      "turn_index": [1, 3],  # Both turns have a context: ranking samples.
  })


def _exact_match(targets, predictions):
  return {"gen/exact_match": 100.0 * np.mean(
      [t["text"] == p for t, p in zip(targets, predictions)])}


@pytest.fixture(name="toy_task")
def toy_task_fixture():
  if TASK in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(TASK)
  seqio.TaskRegistry.add(
      TASK, source=seqio.FunctionDataSource(_dataset_fn, splits=["test"]),
      preprocessors=[seqio.preprocessors.tokenize,
                     seqio.preprocessors.append_eos_after_trim],
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      postprocess_fn=postprocessors.redial_postprocess,
      metric_fns=[_exact_match])
  yield TASK
  seqio.TaskRegistry.remove(TASK)


class FakeModel:
  """Always replies REPLY; records the decoding settings it gets."""

  input_vocabulary = VOCAB
  output_vocabulary = VOCAB

  def __init__(self):
    self.calls, self.batch_rows = [], []

  def predict_batch(self, params, batch, **kwargs):
    del params
    self.calls.append(kwargs)
    self.batch_rows.append(len(batch["encoder_input_tokens"]))
    row = list(VOCAB.encode(REPLY)) + [1]
    n = len(batch["encoder_input_tokens"])
    out = np.zeros((n, kwargs["max_decode_length"]), np.int32)
    out[:, : len(row)] = row
    return out

  def score_batch(self, params, batch):
    del params
    return -np.asarray(batch["decoder_loss_weights"]).sum(-1).astype(float)

  def score_candidates(self, params, encoder_input_tokens, candidate_tokens):
    del params
    return np.zeros((len(encoder_input_tokens), len(candidate_tokens)))


def _bindings(spelling, model_dir, toy_task, output_dir):
  if spelling == "t5x":
    return [f"CHECKPOINT_PATH='{model_dir}'",
            f"MIXTURE_OR_TASK_NAME='{toy_task}'",
            "TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}",
            "MIXTURE_OR_TASK_SPLIT='test'",
            "input_pipeline.DatasetConfig.batch_size=4",
            f"EVAL_OUTPUT_DIR='{output_dir}'"]
  # The deprecated spellings of the same run.
  return [f"MODEL_DIR='{model_dir}'", f"TASKS=['{toy_task}']",
          "INPUTS_LENGTH=32", "TARGETS_LENGTH=8", "SPLIT='test'",
          "BATCH_SIZE=4", f"EVAL_OUTPUT_DIR='{output_dir}'"]


def _run_main(tmp_path, toy_task, monkeypatch, spelling):
  """Runs eval/main's gin entry on the toy task with a fake model.

  Returns (load_model calls, the fake model, model_dir, the eval dir).
  """
  model = FakeModel()
  loaded = []

  def load_model(model_dir, step=None):
    loaded.append((model_dir, step))
    return model, "params", 42

  monkeypatch.setattr(main_lib.checkpointing, "load_model", load_model)
  model_dir = str(tmp_path / "run")
  movie_csv = tmp_path / "movies_with_mentions.csv"
  movie_csv.write_text("movieId,movieName,nbMentions\n1,Heat (1995),5\n"
                       "2,Alien (1979),3\n")
  output_dir = str(tmp_path / "eval_out")
  bindings = _bindings(spelling, model_dir, toy_task, output_dir) + [
      "NUM_EXAMPLES=1", "DECODE_METHOD='beam'", "NUM_BEAMS=2",
      f"MOVIE_LIST='{movie_csv}'", "RANKING_KS=(1, 10)",
  ]
  gin.clear_config()
  try:
    main_lib.run(["gin/runs/eval.gin"], bindings)
  finally:
    gin.clear_config()
  return loaded, model, model_dir, os.path.join(output_dir, "42")


@pytest.mark.parametrize("spelling", ["t5x", "deprecated"])
def test_gin_overrides_reach_loading_and_decoding(tmp_path, toy_task,
                                                  monkeypatch, spelling):
  loaded, model, model_dir, _ = _run_main(tmp_path, toy_task, monkeypatch,
                                          spelling)
  assert loaded == [(model_dir, None)]
  assert model.calls[0]["decode_method"] == "beam"
  assert model.calls[0]["num_beams"] == 2
  assert model.calls[0]["max_decode_length"] == 8
  # Split and batch size in both spellings (t5x's: MIXTURE_OR_TASK_SPLIT and
  # the DatasetConfig binding; deprecated: SPLIT, BATCH_SIZE).
  assert model.batch_rows == [4]  # One example, padded to a batch of 4.


def test_gin_overrides_reach_metrics_and_outputs(tmp_path, toy_task,
                                                 monkeypatch, capsys):
  _, _, _, out_dir = _run_main(tmp_path, toy_task, monkeypatch, "t5x")
  with open(os.path.join(out_dir, "metrics.json")) as f:
    saved = json.load(f)
  # One example (NUM_EXAMPLES=1), answered right: exact match 100.
  assert saved["metrics"]["gen/exact_match"] == 100.0
  # The reply recommends heat, which the recommender suggested: recall 100.
  assert saved["metrics"]["rec/e2e_recall"] == 100.0
  assert saved["num_examples"] == {toy_task: 1}
  # The fake scores every candidate 0: heat ties with alien at rank 2.
  assert saved["metrics"]["rank/recall@1"] == 0.0
  assert saved["metrics"]["rank/recall@10"] == 100.0
  assert saved["metrics"]["rank_dedup/num_samples"] == 1.0
  with open(os.path.join(out_dir, "predictions.jsonl")) as f:
    assert [json.loads(l)["prediction"] for l in f] == [REPLY]
  assert "DECODE_METHOD = 'beam'" in open(
      os.path.join(out_dir, "config.gin")).read()
  assert tf.io.gfile.glob(os.path.join(os.path.dirname(out_dir),
                                       "events.out.*"))
  captured = capsys.readouterr()
  assert "gen/exact_match: 100.0000" in captured.out
  assert not [l for l in captured.err.splitlines() if "deprecated" in l]


def test_deprecated_macros_warn_once_each(tmp_path, toy_task, monkeypatch,
                                          capsys):
  _, _, model_dir, out_dir = _run_main(tmp_path, toy_task, monkeypatch,
                                       "deprecated")
  assert os.path.exists(os.path.join(out_dir, "metrics.json"))
  warnings = [l for l in capsys.readouterr().err.splitlines()
              if "deprecated" in l]
  assert [w.split()[3] for w in warnings] == [
      "MODEL_DIR", "TASKS", "INPUTS_LENGTH", "TARGETS_LENGTH", "SPLIT",
      "BATCH_SIZE"]
  assert warnings[-1] == (
      "warning: gin macro BATCH_SIZE is deprecated; use "
      "input_pipeline.DatasetConfig.batch_size (read --gin.BATCH_SIZE=4 as "
      "input_pipeline.DatasetConfig.batch_size=4)")
  assert warnings[0] == (
      f"warning: gin macro MODEL_DIR is deprecated; use CHECKPOINT_PATH "
      f"(read --gin.MODEL_DIR='{model_dir}' as "
      f"CHECKPOINT_PATH='{model_dir}')")


def test_gin_file_requires_checkpoint_path():
  gin.clear_config()
  try:
    with pytest.raises(errors.UserError,
                       match="gin macro CHECKPOINT_PATH is required"):
      main_lib.run(["gin/runs/eval.gin"], [])
  finally:
    gin.clear_config()


def test_unknown_task_fails_before_loading(tmp_path, monkeypatch):
  monkeypatch.setattr(main_lib.checkpointing, "load_model",
                      lambda *a, **k: pytest.fail("loaded a checkpoint"))
  gin.clear_config()
  try:
    with pytest.raises(errors.UserError,
                       match="did you mean crs_sample_redial_v001"):
      main_lib.run(["gin/runs/eval.gin"],
                   [f"CHECKPOINT_PATH='{tmp_path}'",
                    "MIXTURE_OR_TASK_NAME='crs_sample_redail_v001'"])
  finally:
    gin.clear_config()


def test_decode_config_is_gin_configurable():
  gin.clear_config()
  try:
    gin.parse_config("inference.DecodeConfig.method = 'sample'")
    assert gin.get_configurable(inference.DecodeConfig)().method == "sample"
  finally:
    gin.clear_config()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, write_tiny_model):
  """`python -m eval.main` end to end on the bundled ReDial sample, once.

  Returns (model_dir, the eval output dir, the finished process).
  """
  model_dir = write_tiny_model(
      str(tmp_path_factory.mktemp("cli") / "tiny_3"), 3)
  movie_list = ROOT / "crs_tasks/sample_data/redial/movies_with_mentions.csv"
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
  # CHECKPOINT_PATH names one checkpoint, as in t5x.
  proc = subprocess.run(
      [sys.executable, "-m", "eval.main", "--gin_file=gin/runs/eval.gin",
       f"--gin.CHECKPOINT_PATH='{model_dir}/checkpoints/3'",
       "--gin.MIXTURE_OR_TASK_NAME='crs_sample_redial_v001'",
       "--gin.NUM_EXAMPLES=3",
       "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 8}",
       "--gin.input_pipeline.DatasetConfig.batch_size=4",
       f"--gin.MOVIE_LIST='{movie_list}'",
       "--gin.RANKING_KS=(1, 10)", "--gin.DECODE_METHOD='beam'",
       "--gin.NUM_BEAMS=2",
       f"--gin.PROBE_DIR='{ROOT / 'crs_tasks/sample_data/probes'}'",
       "--gin.MAX_PROBE_PAIRS=3"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return model_dir, os.path.join(model_dir, "eval", "3"), proc


def test_cli_metrics_of_every_family(cli_run):
  _, out_dir, _ = cli_run
  with open(os.path.join(out_dir, "metrics.json")) as f:
    saved = json.load(f)
  metrics = saved["metrics"]
  for name in ("rec/e2e_recall", "gen/bleu4", "gen/distinct2_ratio",
               "rank/recall@1", "rank/recall@10", "rank_dedup/recall@10"):
    assert 0.0 <= metrics[name] <= 100.0, name
  assert metrics["gen/target_logprob"] < 0.0
  for probe in ("recommendation", "attribute", "description", "combination"):
    assert metrics[f"probe/{probe}/num_pairs"] == 3
    assert (metrics[f"probe/{probe}/ci_low"]
            <= metrics[f"probe/{probe}/accuracy"]
            <= metrics[f"probe/{probe}/ci_high"])
  assert saved["num_examples"] == {"crs_sample_redial_v001": 3}
  assert saved["decoding"]["method"] == "beam"


def test_cli_writes_prediction_rows_and_summaries(cli_run):
  model_dir, out_dir, _ = cli_run
  with open(os.path.join(out_dir, "predictions.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 3
  assert all(r["inputs"].startswith("redial conversation:") for r in rows)
  assert all("conversation_id" in r and "target_movies" in r for r in rows)
  assert tf.io.gfile.glob(os.path.join(model_dir, "eval", "events.out.*"))


def test_cli_output_is_quiet_and_ends_with_next_command(cli_run):
  model_dir, out_dir, proc = cli_run
  # The progress bars: generation, then candidate scoring in rows.
  assert "generate crs_sample_redial_v001: 100%" in proc.stderr
  assert "rank crs_sample_redial_v001: 100%" in proc.stderr
  assert "row/s" in proc.stderr
  assert "rank/recall@1:" in proc.stdout
  # Quiet: the third-party log lines are in EVAL_OUTPUT_DIR/logs/eval.log.
  for noise in ("cuInit", "checkpoint_manager", "I0000", "absl::"):
    assert noise not in proc.stderr and noise not in proc.stdout, noise
  assert os.path.exists(os.path.join(model_dir, "eval", "logs", "eval.log"))
  assert f"Outputs in {out_dir}: metrics.json" in proc.stdout
  assert proc.stdout.rstrip().splitlines()[-1] == (
      f"next: python -m eval.report --model_dirs={model_dir} "
      f"--output_dir={model_dir}/report")


def test_report_line_when_eval_output_dir_is_not_run_eval(tmp_path, capsys):
  """eval.report reads <run>/eval/<step>: elsewhere the next step is the
  metrics file itself."""
  main_lib._report(str(tmp_path / "evals" / "3"))
  lines = capsys.readouterr().out.rstrip().splitlines()
  assert lines[-2] == (f"Outputs in {tmp_path}/evals/3: metrics.json, "
                       "predictions.jsonl, config.gin")
  assert lines[-1] == f"next: cat {tmp_path}/evals/3/metrics.json"
  main_lib._report(str(tmp_path / "run" / "eval" / "3"))
  assert capsys.readouterr().out.rstrip().splitlines()[-1] == (
      f"next: python -m eval.report --model_dirs={tmp_path}/run "
      f"--output_dir={tmp_path}/run/report")
