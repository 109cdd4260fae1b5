"""Multi-process training on JAX's distributed runtime, on one machine.

Two processes on 127.0.0.1 (a free port), each with 4 forced CPU devices and
gloo collectives, form one 8-device 4x2 ('data', 'model') mesh and train the
tiny T5 (tests/train/multihost_worker.py). The reference is one process with
8 devices reading the same 2 input shards (`num_input_shards=2`), so both see
the same global batches:

- losses agree within rtol 1e-5 (only the collectives' summation order
  differs: in-process vs gloo);
- each process builds its own rows, and over the 6 steps (one epoch of the
  48 training examples) every example is built exactly once across the two
  processes, though the run is killed after the step-3 checkpoint and
  restarted;
- the restarted run resumes at step 3 and its losses agree with the
  uninterrupted run's; process 0 alone writes the model files and the
  TensorBoard summaries.

Every launch is bounded in time, and processes left over by a failure are
killed.
"""

import collections
import json
import os
import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from crs_runtime import errors
from train import distributed
from train import input_pipeline
from train import summaries

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "multihost_worker.py")
LAUNCH_TIMEOUT_S = 420
RTOL = 1e-5
LENGTHS = {"inputs": 9, "targets": 6}  # As multihost_worker.py.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
  return dict(
      os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
      TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT,
      XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def launch(args, *, processes: int, devices: int, expect_kill=False):
  """Runs `processes` workers (one coordinator on a free port); bounded.

  Returns:
    Each process's (returncode, output).
  """
  port = _free_port()
  procs = []
  try:
    for i in range(processes):
      cmd = [sys.executable, WORKER, *args]
      if processes > 1:
        cmd += [f"--process_count={processes}", f"--process_index={i}",
                f"--port={port}"]
      procs.append(subprocess.Popen(
          cmd, env=_env(devices), stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=LAUNCH_TIMEOUT_S)[0] for p in procs]
  finally:
    for p in procs:  # Only after a failure is any still running.
      if p.poll() is None:
        p.kill()
        p.wait()
  codes = [p.returncode for p in procs]
  if expect_kill:
    assert all(c == -9 for c in codes), (codes, outputs[0][-3000:])
  else:
    assert codes == [0] * processes, [o[-3000:] for o in outputs]
  return list(zip(codes, outputs))


def _read(prefix, process):
  with open(f"{prefix}.{process}.json") as f:
    return json.load(f)


def _read_rows(prefix, process):
  """[(position, rows)] in the order the process built them."""
  with open(f"{prefix}.{process}.rows.jsonl") as f:
    return [tuple(json.loads(line)) for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The 1-process reference, the killed 2-process run and its restart."""
  tmp = tmp_path_factory.mktemp("multihost")
  ref, two = str(tmp / "ref"), str(tmp / "two")
  launch([f"--out={ref}", f"--model_dir={ref}_dir", "--steps=6"],
         processes=1, devices=8)
  killed = launch([f"--out={two}", f"--model_dir={two}_dir", "--steps=6",
                   "--kill_after=3"], processes=2, devices=4, expect_kill=True)
  restarted = launch([f"--out={two}", f"--model_dir={two}_dir", "--steps=6"],
                     processes=2, devices=4)
  return types.SimpleNamespace(
      ref=_read(ref, 0), ref_rows=_read_rows(ref, 0),
      two=[_read(two, i) for i in range(2)],
      two_rows=[_read_rows(two, i) for i in range(2)],
      outputs=[out for _, out in killed + restarted],
      two_dir=two + "_dir")


def _progress_steps(output):
  return [int(line.split()[1].split("/")[0])
          for line in output.splitlines() if line.startswith("step ")]


def test_two_processes_train_like_one_and_resume_exactly(runs):
  ref = {int(k): v for k, v in runs.ref["losses"].items()}
  assert sorted(ref) == [1, 2, 3, 4, 5, 6] and ref[6] < ref[1]
  assert runs.ref["process_count"] == 1
  assert [r["process_count"] for r in runs.two] == [2, 2]
  # Killed after checkpoint 3, restarted: resumes there, steps 4-6.
  for two in runs.two:
    assert two["start_step"] == 3
    assert sorted(two["losses"], key=int) == ["4", "5", "6"]
    np.testing.assert_allclose(
        [two["losses"][str(s)] for s in (4, 5, 6)],
        [ref[s] for s in (4, 5, 6)], rtol=RTOL)
  # Process 0 alone prints progress and writes TensorBoard: one event file
  # per launch, with every step's loss (before the kill and after). The
  # killed run got to step 4 (after checkpoint 3) and died fetching batch 5.
  killed0, killed1, restarted0, restarted1 = runs.outputs
  assert _progress_steps(killed0) == [1, 2, 3, 4]
  assert _progress_steps(restarted0) == [4, 5, 6]
  assert _progress_steps(killed1) == _progress_steps(restarted1) == []
  train_dir = os.path.join(runs.two_dir, "train")
  assert len([f for f in os.listdir(train_dir) if "tfevents" in f]) == 2
  tb = summaries.read_scalars(train_dir)["loss_per_target_token"]
  np.testing.assert_allclose([tb[s] for s in range(1, 7)],
                             [ref[s] for s in range(1, 7)], rtol=RTOL)
  assert sorted(os.listdir(os.path.join(runs.two_dir, "checkpoints"))) == [
      "3", "6"]
  # The lock-stepped training eval over both processes' validation shards
  # saw all 12 examples and agrees with the 1-process eval.
  for name, value in runs.ref["eval"].items():
    np.testing.assert_allclose(runs.two[0]["eval"][name], value, rtol=RTOL,
                               err_msg=name)
  assert runs.ref["eval"][
      "training_eval/trainer_test_toy_v001/num_examples"] == 12


def test_each_example_of_the_epoch_is_built_once_across_processes(
    runs, toy_task):
  ref = dict(runs.ref_rows)
  epoch = []
  for process, built in enumerate(runs.two_rows):
    positions = [position for position, _ in built]
    # The killed run built batches 1-4 and was killed fetching 5; the
    # restart resumed at position 3: batches 4-6, and 7, which the trainer
    # fetches to check the final weights before saving them.
    assert positions == [1, 2, 3, 4, 4, 5, 6, 7]
    assert built[3] == built[4]  # The resumed stream is the same.
    for position, rows in built[:3] + built[4:7]:
      # Process p builds rows 4p..4p+3 of the 1-process run's global batch.
      assert rows == ref[position][4 * process:4 * (process + 1)]
      epoch.extend(tuple(r) for r in rows)
  # 6 steps x 8 rows = one epoch: the 48 training examples, each once.
  cfg = input_pipeline.DatasetConfig(
      mixture_or_task_name=toy_task, task_feature_lengths=LENGTHS,
      split="train", batch_size=1000)
  everything = next(input_pipeline.get_dataset(
      cfg, num_epochs=1, drop_remainder=False).as_numpy_iterator())
  expected = collections.Counter(
      tuple(r) for r in everything["encoder_input_tokens"].tolist())
  assert sum(expected.values()) == 48
  assert collections.Counter(epoch) == expected
