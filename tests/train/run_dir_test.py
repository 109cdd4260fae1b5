"""Tests for train/run_dir.py: the model-size check and the one-writer lock."""

import json
import os
import socket
import subprocess
import sys

import pytest

from train import checkpointing
from train import run_dir


def _saved(tmp_path, config):
  checkpointing.save_model_config(str(tmp_path), config)
  return (tmp_path / "model_config.json").read_bytes()


def test_same_size_fits_and_run_only_fields_may_change(
    tmp_path, tiny_t5_config):
  _saved(tmp_path, tiny_t5_config())
  run_dir.check_compatible(str(tmp_path), tiny_t5_config())
  run_dir.check_compatible(str(tmp_path), tiny_t5_config(dropout_rate=0.3))
  run_dir.check_compatible(str(tmp_path / "new"), tiny_t5_config(emb_dim=8))


def test_other_size_names_both_values_and_touches_nothing(
    tmp_path, tiny_t5_config):
  before = _saved(tmp_path, tiny_t5_config(emb_dim=128))
  with pytest.raises(run_dir.ModelMismatchError) as e:
    run_dir.check_compatible(str(tmp_path), tiny_t5_config(emb_dim=64))
  assert str(e.value).startswith(
      f"{tmp_path}: this directory holds a model with emb_dim 128; the "
      "command asks for 64 (nothing was written). Fix: give a new "
      "--gin.MODEL_DIR")
  assert (tmp_path / "model_config.json").read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ["model_config.json"]


def test_several_differences_are_named_by_field(tmp_path, tiny_t5_config):
  _saved(tmp_path, tiny_t5_config())
  with pytest.raises(run_dir.ModelMismatchError,
                     match=r"holds a model with vocab_size 32, "
                     r"mlp_activations \('gelu', 'linear'\); the command "
                     r"asks for vocab_size 40, mlp_activations \('relu',\)"):
    run_dir.check_compatible(str(tmp_path), tiny_t5_config(
        vocab_size=40, mlp_activations=("relu",)))


def _write_lock(model_dir, **holder):
  record = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": "2026-01-01T00:00:00", "command": "x"}
  record.update(holder)
  (model_dir / run_dir.LOCK_FILE).write_text(json.dumps(record))


def test_lock_names_host_and_pid_and_is_removed_on_release(tmp_path):
  lock = run_dir.RunLock(str(tmp_path / "run")).acquire()
  holder = json.loads((tmp_path / "run" / "train.lock").read_text())
  assert holder["host"] == socket.gethostname()
  assert holder["pid"] == os.getpid() and holder["started"]
  again = run_dir.RunLock(str(tmp_path / "run")).acquire()  # Re-entrant.
  again.release()
  assert (tmp_path / "run" / "train.lock").exists()
  lock.release()
  assert not (tmp_path / "run" / "train.lock").exists()


def test_a_running_holder_stops_the_second_writer(tmp_path):
  with subprocess.Popen([sys.executable, "-c",
                         "import time; time.sleep(60)"]) as other:
    try:
      _write_lock(tmp_path, pid=other.pid)
      with pytest.raises(run_dir.RunLockedError) as e:
        run_dir.RunLock(str(tmp_path)).acquire()
    finally:
      other.kill()
  assert str(e.value) == (
      f"{tmp_path}: another train.main is writing this run directory (pid "
      f"{other.pid} on host {socket.gethostname()}, started "
      "2026-01-01T00:00:00). Fix: wait for it to end or stop it (kill "
      f"{other.pid}), or give another --gin.MODEL_DIR; if no such process "
      f"runs, delete {tmp_path / 'train.lock'}")
  assert json.loads((tmp_path / "train.lock").read_text())["pid"] == (
      other.pid)  # Not touched.


def test_a_stale_lock_of_this_host_is_taken_over_with_a_note(
    tmp_path, capsys):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  dead_pid = int(dead.stdout)
  _write_lock(tmp_path, pid=dead_pid)
  lock = run_dir.RunLock(str(tmp_path)).acquire()
  assert json.loads((tmp_path / "train.lock").read_text())["pid"] == (
      os.getpid())
  assert (f"took over the stale lock of pid {dead_pid} on host "
          f"{socket.gethostname()}") in capsys.readouterr().err
  lock.release()


def test_a_lock_of_another_host_is_reported_with_how_to_remove_it(tmp_path):
  _write_lock(tmp_path, host="elsewhere", pid=1)
  with pytest.raises(run_dir.RunLockedError,
                     match=r"pid 1 on host elsewhere.*if no such process "
                     r"runs, delete .*train.lock"):
    run_dir.RunLock(str(tmp_path)).acquire()
