"""Every gin file parses and binds what it says; local_tiny and sample_tiny run.

Each file under gin/ (except gin/t5x/, which needs t5x) is parsed with its
`%gin.REQUIRED` macros bound to dummy values, after the files it needs:
run files that use `%MODEL` get the tiny model file first, overlays get a
model and runs/train.gin. Then one value the file is known to set is looked
up (`KNOWN_BINDINGS`), so a file that parses but binds the wrong thing, or
is shadowed by what it includes, fails. A new gin file needs an entry there.
"""

import importlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import gin
import pytest

from crs_runtime import gin_flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
GIN_DIR = ROOT / "gin"
TINY_MODEL = "models/t5_1_1_tiny.gin"
# Entry points that register (non-dynamic) configurables used by gin files.
ENTRY_MODULES = ("train.main", "train.infer", "eval.main", "eval.report",
                 "crs_chat.main", "eval.probes.main")
REQUIRED = re.compile(r"^(\w+)\s*=\s*%gin\.REQUIRED", re.M)

GIN_FILES = sorted(
    str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob("*.gin")
    if p.relative_to(GIN_DIR).parts[0] != "t5x")


# One value each file sets (macro or `configurable.parameter`), as written in
# the file.
KNOWN_BINDINGS = {
    "experiments/sample_tiny.gin": (
        "%MIXTURE_OR_TASK_NAME", "crs_sample_t5cr_v002"),
    "experiments/study_common.gin": ("%TRAIN_STEPS", 600),
    "experiments/study2_finetune.gin": ("%PACK", True),
    "experiments/study2_pretrain.gin": (
        "%MIXTURE_OR_TASK_NAME", "crs_small_pretrain_span_corruption_v001"),
    "experiments/study_redial_only.gin": (
        "%MIXTURE_OR_TASK_NAME", "crs_redial_only_v002"),
    "experiments/study_redial_sequences.gin": (
        "%MIXTURE_OR_TASK_NAME", "crs_small_redial_sequences_v002"),
    "experiments/study_redial_tags.gin": (
        "%MIXTURE_OR_TASK_NAME", "crs_small_redial_tags_v002"),
    "experiments/study_t5cr_no_reviews.gin": (
        "%MIXTURE_OR_TASK_NAME", "crs_small_t5cr_no_reviews_v002"),
    "models/t5_1_0.gin": ("network.T5Config.mlp_activations", ("relu",)),
    "models/t5_1_0_tiny.gin": ("network.T5Config.emb_dim", 128),
    "models/t5_1_0_small.gin": ("network.T5Config.num_heads", 8),
    "models/t5_1_0_base.gin": ("network.T5Config.mlp_dim", 3072),
    "models/t5_1_0_large.gin": ("network.T5Config.num_encoder_layers", 24),
    "models/t5_1_0_xl.gin": ("network.T5Config.mlp_dim", 16384),
    "models/t5_1_0_xxl.gin": ("network.T5Config.num_heads", 128),
    "models/t5_1_1.gin": ("network.T5Config.mlp_activations",
                          ("gelu", "linear")),
    "models/t5_1_1_tiny.gin": ("network.T5Config.emb_dim", 128),
    "models/t5_1_1_small.gin": ("network.T5Config.num_heads", 6),
    "models/t5_1_1_base.gin": ("network.T5Config.mlp_dim", 2048),
    "models/t5_1_1_large.gin": ("network.T5Config.mlp_dim", 2816),
    "models/t5_1_1_xl.gin": ("network.T5Config.emb_dim", 2048),
    "models/t5_1_1_xxl.gin": ("network.T5Config.emb_dim", 4096),
    "overlays/local_tiny.gin": ("%TRAIN_STEPS", 3),
    "runs/eval.gin": ("%RANKING_KS", (1, 10, 50)),
    "runs/finetune.gin": ("%LEARNING_RATE", 0.003),
    "runs/infer.gin": ("%DECODE_METHOD", "greedy"),
    "runs/train.gin": ("%BATCH_SIZE", 128),
}


def _prerequisites(name):
  text = (GIN_DIR / name).read_text()
  if name.startswith("overlays/"):
    return [TINY_MODEL, "runs/train.gin"]
  if re.search(r"%MODEL\b", text) and "include 'models/" not in text and not (
      name.startswith("models/")):
    return [TINY_MODEL]
  return []


def _parse_with_required_bound(files):
  """Parses `files`, then binds each macro still `%gin.REQUIRED` to a dummy."""
  gin_flags.parse_gin(files, finalize=False)
  names = set()
  todo = list(files)
  while todo:  # the files and those they include
    text = (GIN_DIR / todo.pop()).read_text()
    names |= set(REQUIRED.findall(text))
    todo += re.findall(r"^include '([^']+)'", text, re.M)
  bound = []
  for name in sorted(names):
    if "REQUIRED" in repr(gin.query_parameter(f"%{name}")):
      gin.parse_config(f"{name} = 'dummy_{name.lower()}'")
      bound.append(name)
  return bound


@pytest.fixture(autouse=True)
def _clean_gin():
  for module in ENTRY_MODULES:
    if importlib.util.find_spec(module.rsplit(".", 1)[0]) and (
        importlib.util.find_spec(module)):
      importlib.import_module(module)
  gin.clear_config()
  yield
  gin.clear_config()


def test_there_are_run_overlay_and_experiment_files():
  assert {"runs/train.gin", "runs/finetune.gin", "runs/infer.gin",
          "overlays/local_tiny.gin", "experiments/sample_tiny.gin",
          TINY_MODEL} <= set(GIN_FILES)


@pytest.mark.parametrize("name", GIN_FILES)
def test_gin_file_binds_its_known_value(name):
  assert name in KNOWN_BINDINGS, f"add {name} to KNOWN_BINDINGS"
  parameter, expected = KNOWN_BINDINGS[name]
  _parse_with_required_bound(_prerequisites(name) + [name])
  assert gin.query_parameter(parameter) == expected


@pytest.mark.parametrize("name", GIN_FILES + [
    "../gin/t5x/" + p.name for p in sorted((GIN_DIR / "t5x").glob("*.gin"))])
def test_gin_file_has_a_header(name):
  lines = (GIN_DIR / name).read_text().splitlines()
  header = []
  for line in lines:
    if not line.startswith("#"):
      break
    header.append(line)
  assert len(header) >= 2, f"{name}: needs a header comment"
  if name.startswith(("runs/", "experiments/", "overlays/", "../")):
    assert "REQUIRED" in "\n".join(header), f"{name}: list REQUIRED macros"


def test_finetune_uses_the_paper_recipe():
  bound = _parse_with_required_bound([TINY_MODEL, "runs/finetune.gin"])
  assert {"INITIAL_CHECKPOINT_PATH", "MIXTURE_OR_TASK_NAME",
          "MODEL_DIR"} <= set(bound)
  assert gin.query_parameter("%LEARNING_RATE") == 0.003
  assert gin.query_parameter("%BATCH_SIZE") == 128
  assert gin.query_parameter("%DROPOUT_RATE") == 0.1
  assert gin.query_parameter("%TASK_FEATURE_LENGTHS") == {
      "inputs": 512, "targets": 128}


def test_local_tiny_overlay_trains_two_steps(tmp_path):
  """The overlay on the real model + run files, through train.main.run."""
  from train import main as main_lib  # pylint: disable=g-import-not-at-top

  gin_flags.parse_gin(
      [TINY_MODEL, "runs/train.gin", "overlays/local_tiny.gin"],
      ["MIXTURE_OR_TASK_NAME = 'crs_sample_t5cr_v002'", "TRAIN_STEPS = 2",
       f"MODEL_DIR = '{tmp_path}'"],
      finalize=False)
  result = main_lib.run()
  assert result.step == 2 and len(result.losses) == 2
  assert (tmp_path / "checkpoints" / "2").is_dir()
  config = json.loads((tmp_path / "model_config.json").read_text())
  assert config["emb_dim"] == 32


def test_sample_tiny_command_line(tmp_path):
  """The embedded default job, shortened to 2 steps, as a user runs it."""
  cmd = [sys.executable, "-m", "train.main",
         "--gin_file=gin/experiments/sample_tiny.gin",
         f"--gin.MODEL_DIR='{tmp_path}'", "--gin.TRAIN_STEPS=2",
         "--gin.EVAL_STEPS=1", "--gin.LOG_PERIOD=1"]
  proc = subprocess.run(
      cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
      check=False, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "step 2/2 loss" in proc.stdout
  assert "Predictions on crs_sample_redial_v002/test:" in proc.stdout
  assert proc.stdout.count("prediction:") == 4
  # Quiet: third-party log lines are in MODEL_DIR/logs/train.log, not on
  # the terminal; the run ends with where its outputs are and what next.
  assert (tmp_path / "logs" / "train.log").exists(), proc.stdout[-800:]
  log = (tmp_path / "logs" / "train.log").read_text()
  assert "checkpoint_manager" in log
  for noise in ("cuInit", "checkpoint_manager", "orbax", "I0000", "W0000",
                "absl::InitializeLog"):
    assert noise not in proc.stdout and noise not in proc.stderr, noise
  assert proc.stderr == ""
  assert f"log: {tmp_path}/logs/train.log" in proc.stdout
  assert proc.stdout.rstrip().splitlines()[-1] == (
      f"next: python -m crs_chat.main --checkpoint_path={tmp_path}")
  assert (tmp_path / "checkpoints" / "2").is_dir()
  assert (tmp_path / "training_eval" / "crs_sample_redial_v002").is_dir()


def test_study2_pretrain_then_finetune_on_the_sample(tmp_path):
  """The study's two gin files on the bundled sample: pretrain 2 steps with
  span corruption, then fine-tune 2 packed steps from that checkpoint."""
  from train import main as main_lib  # pylint: disable=g-import-not-at-top

  pretrain = tmp_path / "pretrain"
  gin_flags.parse_gin(
      ["experiments/study2_pretrain.gin"],
      ["MIXTURE_OR_TASK_NAME = 'crs_sample_pretrain_span_corruption_v001'",
       "TRAIN_STEPS = 2", "EVAL_STEPS = 1", f"MODEL_DIR = '{pretrain}'"],
      finalize=False)
  result = main_lib.run()
  assert result.step == 2 and (pretrain / "checkpoints" / "2").is_dir()
  gin.clear_config()
  finetune = tmp_path / "finetune"
  gin_flags.parse_gin(
      ["experiments/study2_finetune.gin"],
      ["MIXTURE_OR_TASK_NAME = 'crs_sample_redial_sequences_v002'",
       "TRAIN_STEPS = 2", "EVAL_STEPS = 1", "CHECKPOINT_PERIOD = 1",
       f"INITIAL_CHECKPOINT_PATH = '{pretrain}'", f"MODEL_DIR = '{finetune}'"],
      finalize=False)
  result = main_lib.run()
  assert result.step == 2
  # KEEP = None: every checkpoint stays for the learning curves.
  assert sorted(p.name for p in (finetune / "checkpoints").iterdir()) == [
      "1", "2"]
