"""End-to-end test of the training entry point (train/main.py) on a tiny T5.

Parses the real gin files (tiny model + runs/train.gin + the local_tiny
overlay) with distinct train / predict lengths, runs `main.run()` for 2 steps
on conftest's toy task and checks what a user relies on: finite losses,
metric names, a checkpoint that `load_model` restores, config files and the
printed report.
"""

import json

import gin
import jax
import numpy as np
import pytest

from train import checkpointing
from train import gin_flags
from train import main as main_lib
from train import summaries

TINY_MODEL_GIN = "models/t5_1_1_tiny.gin"


@pytest.fixture
def parsed_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def test_tiny_run_end_to_end(toy_task, tmp_path, capsys, parsed_gin):
  del parsed_gin
  gin_flags.parse_gin(
      [TINY_MODEL_GIN, "runs/train.gin", "overlays/local_tiny.gin"],
      [
          f"MIXTURE_OR_TASK_NAME = '{toy_task}'",
          "MIXTURE_OR_TASK_MODULE = None",
          "TASK_FEATURE_LENGTHS = {'inputs': 12, 'targets': 7}",
          "TRAIN_STEPS = 2",
          "EVAL_PERIOD = 2",
          f"MODEL_DIR = '{tmp_path}'",
          f"show_predictions.mixture_or_task_name = '{toy_task}'",
          "show_predictions.num_examples = 2",
          "show_predictions.module = None",
          "show_predictions.task_feature_lengths = "
          "{'inputs': 10, 'targets': 3}",
      ],
      finalize=False,
  )
  result = main_lib.run()

  assert result.step == 2 and sorted(result.losses) == [1, 2]
  assert all(np.isfinite(v) and v > 0 for v in result.losses.values())
  # Checkpoint + the files that rebuild the model.
  assert (tmp_path / "checkpoints" / "2" / "params").is_dir()
  config = json.loads((tmp_path / "model_config.json").read_text())
  assert config["emb_dim"] == 32 and config["num_encoder_layers"] == 2
  assert f"MIXTURE_OR_TASK_NAME = '{toy_task}'" in (
      tmp_path / "config.gin").read_text()
  model, params, step = checkpointing.load_model(str(tmp_path))
  assert step == 2
  jax.tree.map(np.testing.assert_array_equal, params, result.params)
  assert model.module.config.emb_dim == 32
  # t5x-style metric names.
  train_tags = set(summaries.read_scalars(str(tmp_path / "train")))
  assert {"loss", "learning_rate", "timing/seqs_per_second",
          "timing/tokens_per_second"} <= train_tags
  eval_tags = set(summaries.read_scalars(
      str(tmp_path / "training_eval" / toy_task)))
  assert "loss_per_target_token" in eval_tags
  # The report for people.
  out = capsys.readouterr().out
  assert "step 2/2 loss" in out
  assert "loss first" in out and "over 2 steps" in out
  assert out.count("prediction:") == 2
