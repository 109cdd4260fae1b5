"""The README's two-process commands: `train.main`, then `eval.main`.

README.md ("Several hosts") gives the commands that run two processes on one
machine (4 forced CPU devices each). This test reads them from the README
and runs them as written, except for a free port, temporary directories and
overrides that keep them small (2 training steps of a 1-layer width-16 T5
on the sample ReDial task alone, no training eval; 10 evaluation examples
in batches of 3, 5 pairs per probe). Five processes in all, each about
30-40 s of CPU: about 2 min on 2 idle cores, 8 min when other work shares
them.

- `python -m train.main` twice: both exit 0, one checkpoint (step 2); process
  0 alone prints progress.
- `python -m eval.main` twice on that checkpoint, and once alone: the same
  `metrics.json` metrics, exactly (tolerance 0: each process computes whole
  batches of the 1-process run, the same rows in the same shapes), the same
  `predictions.jsonl` rows (greedy decoding); process 0 alone writes them.
  With 10 examples and 4 ranked turns in batches of 3, each process decodes
  and ranks some batches and scores some probe pairs.

Every launch is bounded in time (on a free port), and processes left over
by a failure are killed.
"""

import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 600
LENGTHS = "{'inputs': 32, 'targets': 8}"
TRAIN_OVERRIDES = [
    "--gin.TRAIN_STEPS=2", "--gin.CHECKPOINT_PERIOD=2", "--gin.EVAL_PERIOD=0",
    "--gin.LOG_PERIOD=1", "--gin.MIXTURE_OR_TASK_NAME='crs_sample_redial_v002'",
    f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
    "--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.num_heads=2",
    "--gin.network.T5Config.head_dim=8", "--gin.network.T5Config.mlp_dim=32",
    "--gin.network.T5Config.num_encoder_layers=1",
    "--gin.network.T5Config.num_decoder_layers=1"]
EVAL_OVERRIDES = [
    "--gin.NUM_EXAMPLES=10", "--gin.BATCH_SIZE=3", "--gin.MAX_PROBE_PAIRS=5",
    f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}", "--gin.RANKING_KS=(1, 10)"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def readme_command(module: str) -> tuple[dict[str, str], list[str]]:
  """The README's two-process `python -m <module>` line: (env, arguments)."""
  text = (ROOT / "README.md").read_text(encoding="utf-8")
  block = text[text.index("# Two processes on one machine"):]
  block = block[:block.index("```")].replace("\\\n", " ")
  line = next(l for l in block.splitlines() if f"python -m {module} " in l)
  words = shlex.split(line.strip().rstrip("&"))
  at = words.index("python")
  assert words[at:at + 3] == ["python", "-m", module], words
  env = dict(w.split("=", 1) for w in words[:at])
  return env, words[at + 3:]


def _set(args: list[str], flag: str, value: str) -> list[str]:
  """`args` with the README's `flag=...` replaced by `flag=value`."""
  hits = [i for i, a in enumerate(args) if a.startswith(flag + "=")]
  assert len(hits) == 1, (flag, args)
  return [f"{flag}={value}" if i == hits[0] else a
          for i, a in enumerate(args)]


def launch(module: str, args: list[str], readme_env: dict[str, str], *,
           processes: int) -> list[str]:
  """Runs `python -m module` in `processes` processes; bounded.

  Returns:
    Each process's output (stdout, then stderr).
  """
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=str(ROOT), **readme_env)
  port = _free_port()
  procs = []
  try:
    for i in range(processes):
      argv = args
      if processes > 1:
        argv = _set(_set(args, "--process_index", str(i)),
                    "--coordinator_address", f"127.0.0.1:{port}")
      procs.append(subprocess.Popen(
          [sys.executable, "-m", module, *argv], cwd=ROOT, env=env,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for p in procs:
      out, err = p.communicate(timeout=LAUNCH_TIMEOUT_S)
      outputs.append(out + err)
      assert p.returncode == 0, (module, p.returncode, err[-3000:])
  finally:
    for p in procs:  # Only after a failure is any still running.
      if p.poll() is None:
        p.kill()
        p.wait()
  return outputs


def _single_process(args: list[str]) -> list[str]:
  """`args` without the flags that join several processes."""
  return [a for a in args if not a.startswith(
      ("--coordinator_address=", "--process_count=", "--process_index="))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("two_processes")
  model_dir = str(tmp / "run")
  env, train_args = readme_command("train.main")
  train_out = launch(
      "train.main", _set(train_args, "--gin.MODEL_DIR", repr(model_dir))
      + TRAIN_OVERRIDES, env, processes=2)
  eval_env, eval_args = readme_command("eval.main")
  eval_args = _set(eval_args, "--gin.CHECKPOINT_PATH", repr(model_dir))
  two_dir, one_dir = str(tmp / "eval_two"), str(tmp / "eval_one")
  eval_out = launch(
      "eval.main", eval_args + EVAL_OVERRIDES
      + [f"--gin.EVAL_OUTPUT_DIR={two_dir!r}"], eval_env, processes=2)
  single_env = {k: v for k, v in eval_env.items() if k != "XLA_FLAGS"}
  launch("eval.main", _single_process(eval_args) + EVAL_OVERRIDES
         + [f"--gin.EVAL_OUTPUT_DIR={one_dir!r}"], single_env, processes=1)
  return dict(model_dir=model_dir, train_out=train_out, eval_out=eval_out,
              two_dir=os.path.join(two_dir, "2"),
              one_dir=os.path.join(one_dir, "2"))


def _outputs(step_dir):
  with open(os.path.join(step_dir, "metrics.json")) as f:
    saved = json.load(f)
  with open(os.path.join(step_dir, "predictions.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return saved, rows


def _step_lines(output):
  return [l for l in output.splitlines() if l.startswith("step ")]


def test_readme_two_process_training(runs):
  out0, out1 = runs["train_out"]
  assert os.listdir(os.path.join(runs["model_dir"], "checkpoints")) == ["2"]
  assert [l.split()[1] for l in _step_lines(out0)] == ["1/2", "2/2"]
  assert f"Trained {runs['model_dir']} to step 2." in out0
  assert not _step_lines(out1) and "Trained" not in out1
  logs = sorted(os.listdir(os.path.join(runs["model_dir"], "logs")))
  assert logs == ["train.process0.log", "train.process1.log"]


def test_two_process_eval_equals_one_process(runs):
  two, two_rows = _outputs(runs["two_dir"])
  one, one_rows = _outputs(runs["one_dir"])
  assert (two["process_count"], one["process_count"]) == (2, 1)
  assert two["metrics"] == one["metrics"]  # Exactly, every metric.
  assert two_rows == one_rows  # Greedy predictions and their log-probs.
  metrics = one["metrics"]
  assert len(one_rows) == 10 and one["num_examples"] == {
      "crs_sample_redial_v002": 10}
  # Enough work for both processes: > 1 batch of 3 of each kind.
  assert metrics["rank/num_turns"] > 3
  assert metrics["probe/recommendation/num_pairs"] == 5
  assert metrics["gen/target_logprob"] < 0
  # Process 0 alone reports and writes.
  out0, out1 = runs["eval_out"]
  assert "rank/recall@1:" in out0 and "rank/recall@1:" not in out1
  assert sorted(os.listdir(runs["two_dir"])) == [
      "config.gin", "metrics.json", "predictions.jsonl", "probe_pairs.jsonl"]
  # The per-pair probe rows (paired tests) are the 1-process ones too.
  pairs = [open(os.path.join(runs[d], "probe_pairs.jsonl")).read()
           for d in ("one_dir", "two_dir")]
  assert pairs[0] == pairs[1] and pairs[0].count("\n") >= 5
