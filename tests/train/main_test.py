"""End-to-end test of the training entry point (train/main.py) on a tiny T5.

Parses the real gin files (tiny model + runs/train.gin + the local_tiny
overlay) with distinct train / predict lengths, runs `main.run()` for 2 steps
on conftest's toy task and checks what a user relies on: finite losses,
metric names, a checkpoint that `load_model` restores, config files and the
printed report.
"""

import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from crs_runtime import errors
from train import checkpointing
from crs_runtime import gin_flags
from train import main as main_lib
from train import summaries

TINY_MODEL_GIN = "models/t5_1_1_tiny.gin"
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(name="tiny_run", scope="module")
def _tiny_run(toy_task, tmp_path_factory):
  """`(result, model_dir, printed)` of a 2-step `main.run()` on the toy task."""
  model_dir = tmp_path_factory.mktemp("tiny_run")
  gin.clear_config()
  gin_flags.parse_gin(
      [TINY_MODEL_GIN, "runs/train.gin", "overlays/local_tiny.gin"],
      [
          f"MIXTURE_OR_TASK_NAME = '{toy_task}'",
          "MIXTURE_OR_TASK_MODULE = None",
          "TASK_FEATURE_LENGTHS = {'inputs': 12, 'targets': 7}",
          "TRAIN_STEPS = 2",
          "EVAL_PERIOD = 2",
          f"MODEL_DIR = '{model_dir}'",
          f"show_predictions.mixture_or_task_name = '{toy_task}'",
          "show_predictions.num_examples = 2",
          "show_predictions.module = None",
          "show_predictions.task_feature_lengths = "
          "{'inputs': 10, 'targets': 3}",
      ],
      finalize=False,
  )
  printed = io.StringIO()
  try:
    with contextlib.redirect_stdout(printed):
      result = main_lib.run()
  finally:
    gin.clear_config()
  return result, model_dir, printed.getvalue()


def test_tiny_run_trains_to_the_last_step_with_finite_losses(tiny_run):
  result, _, _ = tiny_run
  assert result.step == 2 and sorted(result.losses) == [1, 2]
  assert all(np.isfinite(v) and v > 0 for v in result.losses.values())


def test_tiny_run_writes_checkpoint_and_config_files(tiny_run, toy_task):
  _, model_dir, _ = tiny_run
  assert (model_dir / "checkpoints" / "2" / "params").is_dir()
  config = json.loads((model_dir / "model_config.json").read_text())
  assert config["emb_dim"] == 32 and config["num_encoder_layers"] == 2
  assert f"MIXTURE_OR_TASK_NAME = '{toy_task}'" in (
      model_dir / "config.gin").read_text()


def test_tiny_run_checkpoint_rebuilds_the_model(tiny_run):
  result, model_dir, _ = tiny_run
  model, params, step = checkpointing.load_model(str(model_dir))
  assert step == 2
  jax.tree.map(np.testing.assert_array_equal, params, result.params)
  assert model.module.config.emb_dim == 32


def test_tiny_run_summaries_use_t5x_metric_names(tiny_run, toy_task):
  _, model_dir, _ = tiny_run
  train_tags = set(summaries.read_scalars(str(model_dir / "train")))
  assert {"loss", "learning_rate", "timing/seqs_per_second",
          "timing/tokens_per_second"} <= train_tags
  eval_tags = set(summaries.read_scalars(
      str(model_dir / "training_eval" / toy_task)))
  assert "loss_per_target_token" in eval_tags


def test_tiny_run_prints_progress_loss_summary_and_predictions(tiny_run):
  _, _, out = tiny_run
  assert "step 2/2 loss" in out
  assert "loss first" in out and "over 2 steps" in out
  assert out.count("prediction:") == 2


def test_tiny_run_ends_with_outputs_and_next_commands(tiny_run, toy_task):
  _, model_dir, out = tiny_run
  assert f"Outputs in {model_dir}: checkpoints/ (latest step 2)" in out
  assert (f"next: python -m eval.main --gin_file=gin/runs/eval.gin "
          f"--gin.CHECKPOINT_PATH=\"'{model_dir}'\" "
          f"--gin.MIXTURE_OR_TASK_NAME=\"'{toy_task}'\"") in out
  assert out.rstrip().splitlines()[-1] == (
      f"next: python -m crs_chat.main --checkpoint_path={model_dir}")


def test_resumed_run_reports_the_min_loss_at_its_global_step(
    tiny_run, toy_task, tmp_path, capsys):
  """Resumed from step 2 to 4: the minimum is at step 3 or 4, not 1 or 2."""
  _, model_dir, _ = tiny_run
  run_dir = tmp_path / "run"
  shutil.copytree(model_dir, run_dir)
  gin.clear_config()
  try:
    gin_flags.parse_gin(
        [TINY_MODEL_GIN, "runs/train.gin", "overlays/local_tiny.gin"],
        [f"MIXTURE_OR_TASK_NAME = '{toy_task}'",
         "MIXTURE_OR_TASK_MODULE = None",
         "TASK_FEATURE_LENGTHS = {'inputs': 12, 'targets': 7}",
         "TRAIN_STEPS = 4", "EVAL_PERIOD = 0", f"MODEL_DIR = '{run_dir}'"],
        finalize=False)
    resumed = main_lib.run()
  finally:
    gin.clear_config()
  assert sorted(resumed.losses) == [3, 4]
  best = min(resumed.losses, key=resumed.losses.get)
  assert f"(step {best})  over 2 steps" in capsys.readouterr().out


@pytest.fixture(name="parsed_gin")
def _parsed_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _parse_tiny(tmp_path, *bindings):
  gin_flags.parse_gin(
      [TINY_MODEL_GIN, "runs/train.gin", "overlays/local_tiny.gin"],
      ["MIXTURE_OR_TASK_NAME = 'crs_sample_t5cr_v001'",
       f"MODEL_DIR = '{tmp_path / 'run'}'", *bindings],
      finalize=False)


def test_unknown_task_suggests_and_leaves_model_dir_untouched(
    tmp_path, parsed_gin):
  del parsed_gin
  _parse_tiny(tmp_path, "MIXTURE_OR_TASK_NAME = 'crs_sample_t5cr_v01'")
  with pytest.raises(errors.UserError) as info:
    main_lib.run()
  assert "unknown task or mixture crs_sample_t5cr_v01; did you mean " \
      "crs_sample_t5cr_v001" in str(info.value)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("lengths, message", [
    ("{'inputs': -128, 'targets': 32}",
     "TASK_FEATURE_LENGTHS: the 'inputs' length must be a positive integer, "
     "got -128"),
    ("{'inputs': 128, 'targets': 0}",
     "TASK_FEATURE_LENGTHS: the 'targets' length must be a positive "
     "integer, got 0"),
    ("{'inputs': 128}", "TASK_FEATURE_LENGTHS: no length for 'targets'"),
])
def test_bad_feature_lengths_name_the_macro(tmp_path, parsed_gin, lengths,
                                            message):
  del parsed_gin
  _parse_tiny(tmp_path, f"TASK_FEATURE_LENGTHS = {lengths}")
  with pytest.raises(errors.UserError) as info:
    main_lib.run()
  assert str(info.value).startswith(message)
  assert not (tmp_path / "run").exists()


def test_cli_macro_typo_exits_2_with_one_line(tmp_path):
  """`python -m train.main` with a typo: one line, exit 2, nothing run."""
  proc = subprocess.run(
      [sys.executable, "-m", "train.main",
       "--gin_file=gin/experiments/sample_tiny.gin",
       f"--gin.MODEL_DIR='{tmp_path / 'run'}'", "--gin.TRAIN_STEPZ=5"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 2
  assert proc.stderr == (
      "error: unknown gin macro TRAIN_STEPZ (from --gin.TRAIN_STEPZ=5); did "
      "you mean TRAIN_STEPS?\n")
  assert proc.stdout == ""
  assert not (tmp_path / "run").exists()


NOBODY = 65534


def test_read_only_model_dir_is_one_error_line_before_training():
  """`train.main` with a MODEL_DIR the user cannot write: exit 2 and one
  `error:` line, no traceback, nothing trained.

  root writes anywhere, so under root the command runs as user nobody
  (util-linux `setpriv`); otherwise the directory is made read-only (0555).
  """
  prefix = []
  if os.geteuid() == 0:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
      pytest.skip("running as root, which writes anywhere, and util-linux's "
                  "setpriv (to run as user nobody) is not installed")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}",
              "--clear-groups"]
    probe = subprocess.run(
        prefix + [sys.executable, "-c",
                  f"open({str(ROOT / 'train' / 'main.py')!r}).close()"],
        capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
      pytest.skip(f"user nobody cannot run {sys.executable} on {ROOT}: "
                  f"{(probe.stderr.strip().splitlines() or ['?'])[-1]}")
  # Not under pytest's tmp_path: that is private to root (0700).
  base = pathlib.Path(tempfile.mkdtemp(prefix="crs-read-only-"))
  model_dir, home = base / "run", base / "home"
  try:
    os.chmod(base, 0o755)
    model_dir.mkdir(mode=0o555)
    home.mkdir()
    if prefix:
      os.chown(home, NOBODY, NOBODY)  # TFDS and JAX may write under HOME.
    os.chmod(model_dir, 0o555)  # mkdir's mode is masked by the umask.
    start = time.monotonic()
    proc = subprocess.run(
        prefix + [sys.executable, "-m", "train.main",
                  "--gin_file=gin/experiments/sample_tiny.gin",
                  f"--gin.MODEL_DIR='{model_dir}'"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, HOME=str(home), JAX_PLATFORMS="cpu"))
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert proc.stderr == (
        f"error: {model_dir}: MODEL_DIR is not writable (Permission denied)."
        " Fix: choose a writable --gin.MODEL_DIR or fix its permissions\n")
    assert "Traceback" not in proc.stdout
    assert "step 1/" not in proc.stdout  # Failed before training.
    assert not list(model_dir.iterdir())
    print(f"read-only MODEL_DIR ({'as nobody' if prefix else '0555'}): "
          f"exit 2 in {elapsed:.1f} s")
  finally:
    os.chmod(model_dir, 0o755)
    shutil.rmtree(base)


@pytest.mark.parametrize("binding, message", [
    ("TRAIN_STEPS = 'twenty'", "gin macro TRAIN_STEPS must be a positive "
     "integer, got 'twenty' (a string). Fix: e.g. --gin.TRAIN_STEPS=1000"),
    ("TRAIN_STEPS = -5", "gin macro TRAIN_STEPS must be a positive integer, "
     "got -5 (an integer)"),
    ("BATCH_SIZE = '16'", "gin macro BATCH_SIZE must be a positive integer, "
     "got '16' (a string)"),
    ("LEARNING_RATE = 'fast'", "gin macro LEARNING_RATE must be a positive "
     "number, got 'fast' (a string)"),
    ("CHECKPOINT_PERIOD = 0", "gin macro CHECKPOINT_PERIOD must be a "
     "positive integer, got 0"),
    ("EVAL_PERIOD = -1", "gin macro EVAL_PERIOD must be an integer >= 0"),
    ("KEEP = 0", "gin macro KEEP must be a positive integer or None"),
    ("BATCH_SIZE = True", "gin macro BATCH_SIZE must be a positive integer, "
     "got True (a boolean)"),
    ("DROPOUT_RATE = 1.5", "gin macro DROPOUT_RATE must be a number in "
     "[0, 1), got 1.5"),
    ("MESH_SHAPE = (4,)", "gin macro MESH_SHAPE must be None or (data, "
     "model)"),
    ("INITIAL_CHECKPOINT_PATH = '/nonexistent/ckpt'",
     "/nonexistent/ckpt: INITIAL_CHECKPOINT_PATH does not exist"),
])
def test_bad_numeric_or_path_macro_is_named_before_model_dir_is_written(
    tmp_path, parsed_gin, binding, message):
  del parsed_gin
  _parse_tiny(tmp_path, binding)
  with pytest.raises(errors.UserError) as info:
    main_lib.run()
  assert str(info.value).startswith(message)
  assert not (tmp_path / "run").exists()


def _run_dir_of_another_size(tmp_path):
  """A run directory (model_config.json, config.gin) of emb_dim 128."""
  run = tmp_path / "run"
  run.mkdir()
  fields = {"emb_dim": 128, "num_heads": 2, "head_dim": 16, "mlp_dim": 64,
            "num_encoder_layers": 2, "num_decoder_layers": 2,
            "vocab_size": 32128}
  (run / "model_config.json").write_text(json.dumps(fields))
  (run / "config.gin").write_text("# the first run's config\n")
  return run


def test_resume_with_another_model_size_touches_nothing(
    tmp_path, parsed_gin):
  del parsed_gin
  run = _run_dir_of_another_size(tmp_path)
  before = {p.name: p.read_bytes() for p in run.iterdir()}
  _parse_tiny(tmp_path, "TASK_FEATURE_LENGTHS = {'inputs': 8, 'targets': 8}",
              "TRAIN_STEPS = 2")
  with pytest.raises(errors.UserError) as info:
    main_lib.run()
  assert str(info.value).startswith(
      f"{run}: this directory holds a model with emb_dim 128; the command "
      "asks for 32 (nothing was written)")
  assert {p.name: p.read_bytes() for p in run.iterdir()} == before


_ADAM_GIN = """
from __gin__ import dynamic_registration
import optax
from train import trainer

trainer.train.optimizer = @optax.adam()
optax.adam.learning_rate = %LEARNING_RATE_SCHEDULE
"""


def test_resume_with_another_optimizer_touches_nothing(tmp_path,
                                                        parsed_gin):
  """A run trained with Adafactor, resumed with Adam: one line naming both,
  before MODEL_DIR (its config.gin, its logs/) is touched."""
  del parsed_gin
  _parse_tiny(tmp_path, "TRAIN_STEPS = 2")
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                        checkpointing.abstract_params(model))
  run = tmp_path / "run"
  manager = checkpointing.CheckpointManager(str(run))
  manager.save(2, params=params, opt_state=optax.adafactor(0.01).init(params),
               data_position=2)
  manager.close()
  checkpointing.save_model_config(str(run), model.module.config)
  (run / "config.gin").write_text(
      "trainer.train.optimizer = @optax.adafactor()\n")
  before = _snapshot(run)
  gin.clear_config()
  (tmp_path / "adam.gin").write_text(_ADAM_GIN)
  gin_flags.parse_gin(
      [TINY_MODEL_GIN, "runs/train.gin", "overlays/local_tiny.gin",
       str(tmp_path / "adam.gin")],
      ["MIXTURE_OR_TASK_NAME = 'crs_sample_t5cr_v001'",
       f"MODEL_DIR = '{run}'", "TRAIN_STEPS = 4"], finalize=False)
  with pytest.raises(errors.UserError) as info:
    main_lib.run()
  assert str(info.value).startswith(
      f"{run}: optimizer state structure differs from the checkpoint: the "
      "command asks for @optax.adam() (state fields count, mu, nu), the "
      "directory holds @optax.adafactor() (state fields count, v, v_col, "
      "v_row) (checkpoint step 2; nothing was written). Fix: resume with "
      "the original optimizer settings")
  assert _snapshot(run) == before  # No config.gin, no logs/, no lock.


def _snapshot(directory):
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in directory.rglob("*") if p.is_file()}


def test_second_writer_of_a_run_dir_stops_naming_the_first(
    tmp_path, parsed_gin):
  del parsed_gin
  run = tmp_path / "run"
  run.mkdir()
  with subprocess.Popen([sys.executable, "-c",
                         "import time; time.sleep(60)"]) as other:
    try:
      (run / "train.lock").write_text(json.dumps(
          {"host": __import__("socket").gethostname(), "pid": other.pid,
           "started": "2026-01-01T00:00:00", "command": "python -m ..."}))
      _parse_tiny(tmp_path,
                  "TASK_FEATURE_LENGTHS = {'inputs': 8, 'targets': 8}",
                  "TRAIN_STEPS = 2")
      with pytest.raises(errors.UserError) as info:
        main_lib.run()
    finally:
      other.kill()
  assert str(info.value).startswith(
      f"{run}: another train.main is writing this run directory (pid "
      f"{other.pid} on host ")
  assert sorted(os.listdir(run)) == ["train.lock"]  # Nothing written.


def test_interrupt_names_the_last_checkpoint_and_the_resume_command(
    tmp_path, parsed_gin, monkeypatch):
  del parsed_gin
  from train import trainer  # pylint: disable=g-import-not-at-top
  run = tmp_path / "run"

  def interrupted(**unused_kwargs):
    raise trainer.TrainingInterrupted(str(run), 7, 6,
                                      str(run / "checkpoints" / "6"))

  monkeypatch.setattr(main_lib, "train_using_gin", interrupted)
  monkeypatch.setattr(sys, "argv", [
      str(ROOT / "train" / "main.py"), "--gin_file=x.gin",
      f"--gin.MODEL_DIR='{run}'"])
  _parse_tiny(tmp_path, "TASK_FEATURE_LENGTHS = {'inputs': 8, 'targets': 8}",
              "TRAIN_STEPS = 2")
  with pytest.raises(KeyboardInterrupt) as info:
    main_lib.run()
  assert str(info.value) == (
      f"training interrupted at step 7; the last checkpoint is step 6 "
      f"({run / 'checkpoints' / '6'}); resume with: python -m train.main "
      f"--gin_file=x.gin --gin.MODEL_DIR=\"'{run}'\"")
  assert not (run / "train.lock").exists()  # Released.


@pytest.mark.slow  # Two real train.main processes on the tiny T5 (minutes).
def test_ctrl_c_in_a_real_run_is_one_line_and_the_rerun_says_its_step(
    tmp_path):
  """SIGINT to `python -m train.main` after its first checkpoint: exit 130,
  one `interrupted:` line naming the checkpoint and the resume command, no
  traceback, the lock released; the re-run prints the step it resumed
  from."""
  run = tmp_path / "run"
  command = [sys.executable, "-m", "train.main",
             "--gin_file=gin/experiments/sample_tiny.gin",
             f"--gin.MODEL_DIR='{run}'", "--gin.TRAIN_STEPS=400",
             "--gin.CHECKPOINT_PERIOD=2", "--gin.LOG_PERIOD=1",
             "--gin.EVAL_PERIOD=0"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
  try:
    for line in proc.stdout:  # Progress lines are flushed.
      if line.startswith("step 3/"):  # After the step-2 checkpoint.
        break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert proc.returncode == 130, err[-3000:]
  assert err.count("\n") == 1 and "Traceback" not in err, err[-3000:]
  match = re.fullmatch(
      r"interrupted: training interrupted at step (\d+); the last checkpoint "
      r"is step (\d+) \((.*)\); resume with: python -m train.main (.*)\n",
      err)
  assert match, err
  last = int(match.group(2))
  assert last >= 2 and match.group(3) == str(run / "checkpoints" / str(last))
  assert (run / "checkpoints" / str(last)).is_dir()
  assert not (run / "train.lock").exists()
  rerun = subprocess.run(
      command[:5] + [f"--gin.TRAIN_STEPS={last + 1}"] + command[6:],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
      env=env)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert (f"Resuming from checkpoint step {last} "
          f"({run / 'checkpoints' / str(last)}).") in rerun.stdout
