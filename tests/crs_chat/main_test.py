"""Scripted sessions through the `crs_chat.main` entry point.

stdin piped, and once in a pseudo-terminal (`pty`), as a user sees it.
"""

import io
import os
import pathlib
import pty
import select
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crs_tasks import features
from crs_chat import main as chat_main
from train import checkpointing
from train import models
from train import network

VOCAB = features.get_vocabulary()
CATALOGUE_CSV = ("movieId,movieName,nbMentions\n"
                 "1,The Matrix (1999),10\n2,Heat  (1995),3\n")


class EchoTitleModel:
  """Replies `how about @ heat (1995) @ ?` and records the inputs it saw."""

  input_vocabulary = VOCAB
  output_vocabulary = VOCAB

  def __init__(self):
    self.inputs = []

  def predict_batch(self, params, batch, **kwargs):
    del params
    for row in np.asarray(batch["encoder_input_tokens"]):
      ids = [int(i) for i in row if i > 1]
      self.inputs.append(VOCAB.decode(ids))
    reply = list(VOCAB.encode("how about @ heat (1995) @ ?")) + [1]
    out = np.zeros((len(batch["encoder_input_tokens"]),
                    kwargs["max_decode_length"]), np.int32)
    out[:, : len(reply)] = reply
    return out


@pytest.fixture(name="run_chat")
def run_chat_fixture(monkeypatch, tmp_path):
  csv_path = tmp_path / "movies_with_mentions.csv"
  csv_path.write_text(CATALOGUE_CSV)

  def run(model, stdin_text, **kwargs):
    monkeypatch.setattr(chat_main.checkpointing, "load_model",
                        lambda model_dir, step=None: (model, "params", 5))
    out = io.StringIO()
    chat_main.run_chat(checkpoint="/some/run", catalogue_paths=[str(csv_path)],
                       stdin=io.StringIO(stdin_text), stdout=out, **kwargs)
    return out.getvalue().splitlines()

  return run


def test_scripted_session_transcript(run_chat):
  model = EchoTitleModel()
  lines = run_chat(model, "I loved The Matrix\n/history\n/reset\nhi\n/quit\n")
  assert lines[0] == ("T5-CR chat: /some/run step 5, 2 titles. /help for "
                      "commands.")
  assert lines[1:] == [
      "you> I loved The Matrix",
      "  (matched: The Matrix (1999))",
      "assistant> how about Heat (1995) ?",
      "  recommended: Heat (1995)",
      "you> /history",
      "redial conversation: [user] i loved @ the matrix (1999) @ "
      "[assistant] how about @ heat (1995) @ ?",
      "you> /reset",
      "(new conversation)",
      "you> hi",
      "assistant> how about Heat (1995) ?",
      "  recommended: Heat (1995)",
      "you> /quit",
      "bye.",
  ]
  # The model saw the ReDial-formatted history; /reset cleared it.
  assert model.inputs == [
      "redial conversation: [user] i loved @ the matrix (1999) @",
      "redial conversation: [user] hi",
  ]


def test_long_history_drops_oldest_turns(run_chat):
  model = EchoTitleModel()
  run_chat(model, "first " * 30 + "\nsecond\n", inputs_length=40)
  # 30 words do not fit in 40 tokens once the reply and "second" follow.
  assert model.inputs[1] == (
      "redial conversation: [assistant] how about @ heat (1995) @ ? "
      "[user] second")


def test_cli_session_with_tiny_random_model(tiny_model_dir, runnable):
  """`python -m crs_chat.main` on a random 1-layer T5, stdin piped."""
  model_dir = tiny_model_dir(step=2)
  # What train.main writes: the run's gin config names what it trained on.
  with open(os.path.join(model_dir, "config.gin"), "w") as f:
    f.write("MIXTURE_OR_TASK_NAME = 'crs_sample_t5cr_v002'\n"
            "TASK_FEATURE_LENGTHS = {'inputs': 128, 'targets': 32}\n")
  root = pathlib.Path(__file__).resolve().parents[2]
  proc = subprocess.run(
      [sys.executable, "-m", "crs_chat.main", f"--checkpoint_path={model_dir}",
       "--max_decode_length=6", "--inputs_length=64"],
      input="I loved The Matrix 1999\n/reset\nany comedy?\n/quit\nignored\n",
      cwd=root, capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert lines[0].startswith(f"T5-CR chat: {model_dir} step 2, ")
  assert lines[1:3] == ["you> I loved The Matrix 1999",
                        "  (matched: The Matrix (1999))"]
  assert lines[3].startswith("assistant> ")
  rest = [l for l in lines[4:] if not l.startswith("  recommended: ")]
  assert rest[:3] == ["you> /reset", "(new conversation)", "you> any comedy?"]
  assert rest[3].startswith("assistant> ")
  assert rest[4:7] == ["you> /quit", "bye.", ""]
  # At exit: where the log is, and the command that evaluates the model on
  # the ReDial task of the mixture it was trained on (sample: with the
  # bundled movie list and probes).
  assert rest[7] == (f"Outputs: none (the transcript is above, not saved); "
                     f"log: {model_dir}/logs/chat.log")
  assert os.path.exists(os.path.join(model_dir, "logs", "chat.log"))
  assert rest[8:] == [
      "next: python -m eval.main --gin_file=gin/runs/eval.gin "
      f"--gin.CHECKPOINT_PATH=\"'{model_dir}'\" "
      "--gin.MIXTURE_OR_TASK_NAME=\"'crs_sample_redial_v002'\" "
      "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 128, 'targets': 32}\" "
      "--gin.NUM_EXAMPLES=100 --gin.MOVIE_LIST=\"'crs_tasks/sample_data/"
      "redial/movies_with_mentions.csv'\" "
      "--gin.PROBE_DIR=\"'crs_tasks/sample_data/probes'\""]
  runnable(rest[8], root)


def _read_until(fd, marker, timeout=900.0):
  """Reads a pty's output until `marker` shows (or EOF); returns the text."""
  out, deadline = b"", time.monotonic() + timeout
  while marker.encode() not in out and time.monotonic() < deadline:
    ready, _, _ = select.select([fd], [], [], 1.0)
    if not ready:
      continue
    try:
      chunk = os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal
      break
    if not chunk:
      break
    out += chunk
  return out.decode("utf-8", "replace").replace("\r\n", "\n")


def test_prompt_reaches_a_real_terminal(tiny_model_dir):
  """In a pseudo-terminal the `you> ` prompt is shown, not logged."""
  model_dir = tiny_model_dir(step=2)
  root = pathlib.Path(__file__).resolve().parents[2]
  master, slave = pty.openpty()
  proc = subprocess.Popen(
      [sys.executable, "-m", "crs_chat.main", f"--checkpoint_path={model_dir}",
       "--max_decode_length=6", "--inputs_length=64"],
      stdin=slave, stdout=slave, stderr=slave, cwd=root,
      start_new_session=True,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu"))
  os.close(slave)
  try:
    shown = _read_until(master, "you> ")
    assert shown.endswith("you> "), shown[-3000:]
    os.write(master, b"I loved The Matrix 1999\n")
    shown += _read_until(master, "you> ")
    os.write(master, b"/quit\n")
    shown += _read_until(master, "next: ")
    shown += _read_until(master, "\n", timeout=30)
    assert proc.wait(timeout=60) == 0, shown[-3000:]
  finally:
    if proc.poll() is None:
      proc.kill()
    os.close(master)
  lines = shown.splitlines()
  assert lines[0].startswith(f"T5-CR chat: {model_dir} step 2, "), shown
  # The prompt, then what the terminal echoed as it was typed.
  assert "you> I loved The Matrix 1999" in lines, shown
  assert "you> /quit" in lines and "bye." in lines, shown
  assert any(l.startswith("assistant> ") for l in lines), shown
  # Only the REPL's own lines: third-party log lines went to the log.
  ours = ("T5-CR chat: ", "you> ", "  (matched: ", "assistant> ",
          "  recommended: ", "bye.", "Outputs: ", "next: ")
  assert all(l.startswith(ours) for l in lines if l), shown
  log = (pathlib.Path(model_dir) / "logs" / "chat.log").read_text()
  assert log and "you> " not in log
