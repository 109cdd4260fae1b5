r"""Per-host input time and step time with 1 and 2 processes, same global batch.

  python bench/multihost_input.py --batches=20 --steps=8

Input: each process builds its rows of `--batches` global batches of
`--batch_size` rows of `crs_sample_redial_v002` (lengths 512/128) through
`input_pipeline.get_local_dataset`: 1 process reads the whole batch, each of
2 processes (run at the same time) reads its shard, half the rows. Prints
each process's seconds (after the first batch, which pays for building the
pipeline) and rows.

Step: the tiny T5 1.1 (`gin/models/t5_1_1_tiny.gin` sizes) trained
`--steps` steps on the same global batch, on 1 process x 8 forced CPU
devices and on 2 processes x 4 (gloo), 8x1 mesh; prints the median
seconds per step after the first two (compilation).

Prints the figures side by side, one column per process count. Both
processes run on this one machine and share its cores (and, here, with
whatever else runs), so the 2-process figures show the work per host, not a
speed-up.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = "crs_sample_redial_v002"
LENGTHS = {"inputs": 512, "targets": 128}


def _cfg(batch_size):
  from train import input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline.DatasetConfig(
      mixture_or_task_name=TASK, task_feature_lengths=LENGTHS, split="train",
      batch_size=batch_size, shuffle=True, seed=0, module="crs_tasks")


def input_worker(args):
  """Builds this process's rows of `args.batches` global batches."""
  from train import input_pipeline  # pylint: disable=g-import-not-at-top
  shards = (args.process_index,) if args.process_count > 1 else (0,)
  ds = input_pipeline.get_local_dataset(
      _cfg(args.batch_size), shard_ids=shards, num_shards=args.process_count)
  it = ds.as_numpy_iterator()
  first = next(it)
  start = time.perf_counter()
  rows = first["encoder_input_tokens"].shape[0]
  for _ in range(args.batches - 1):
    rows += next(it)["encoder_input_tokens"].shape[0]
  seconds = time.perf_counter() - start
  print("RESULT" + json.dumps({"seconds": seconds, "rows": rows,
                               "local_batch": int(first[
                                   "encoder_input_tokens"].shape[0])}))


def step_worker(args):
  """Trains the tiny T5; prints seconds per step (from its summaries)."""
  from train import distributed  # pylint: disable=g-import-not-at-top
  if args.process_count > 1:
    distributed.initialize(f"127.0.0.1:{args.port}", args.process_count,
                           args.process_index, timeout_s=120)
  # pylint: disable=g-import-not-at-top
  import optax
  from crs_tasks import features
  from train import models, network, summaries, trainer
  # pylint: enable=g-import-not-at-top
  vocab = features.get_vocabulary()
  model = models.EncoderDecoderModel(network.Transformer(network.T5Config(
      vocab_size=32128, emb_dim=128, num_heads=4, num_encoder_layers=2,
      num_decoder_layers=2, head_dim=32, mlp_dim=256,
      mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=False)), vocab, vocab)
  trainer.train(
      model=model, optimizer=optax.adafactor(0.01),
      train_dataset_cfg=_cfg(args.batch_size), model_dir=args.model_dir,
      total_steps=args.steps, checkpoint_period=10**6, log_period=1,
      mesh_shape=(8, 1))
  if distributed.is_primary():
    scalars = summaries.read_scalars(os.path.join(args.model_dir, "train"))
    per_step = scalars["timing/seconds_per_step"]
    times = [per_step[s] for s in sorted(per_step)][2:]
    print("RESULT" + json.dumps({"seconds_per_step": statistics.median(
        times)}))


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(mode, processes, extra):
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
             CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
             XLA_FLAGS="--xla_force_host_platform_device_count="
             f"{8 // processes}")
  procs = [subprocess.Popen(
      [sys.executable, __file__, f"--mode={mode}_worker",
       f"--process_count={processes}", f"--process_index={i}",
       f"--port={port}", *extra], env=env, stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL, text=True) for i in range(processes)]
  results = []
  try:
    for p in procs:
      out = p.communicate(timeout=1800)[0]
      lines = [l for l in out.splitlines() if l.startswith("RESULT")]
      results.append(json.loads(lines[-1][6:]) if lines else None)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  # Every input worker reports; of the step workers, process 0.
  if results[0] is None or (mode == "input" and None in results):
    raise SystemExit(f"a {mode} worker gave no result (exit codes "
                     f"{[p.returncode for p in procs]}); rerun it alone "
                     "(--mode=..._worker) to see its log")
  return results


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--mode", default="all")
  p.add_argument("--batches", type=int, default=20)
  p.add_argument("--steps", type=int, default=8)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--process_count", type=int, default=1)
  p.add_argument("--process_index", type=int, default=0)
  p.add_argument("--port", type=int, default=0)
  p.add_argument("--model_dir", default="")
  args = p.parse_args()
  if args.mode == "input_worker":
    return input_worker(args)
  if args.mode == "step_worker":
    return step_worker(args)
  print(f"global batch {args.batch_size} rows of {TASK}, lengths "
        f"{LENGTHS['inputs']}/{LENGTHS['targets']}", flush=True)
  columns = {}  # processes -> {row name: text}
  for n in (1, 2):
    res = launch("input", n, [f"--batches={args.batches}",
                              f"--batch_size={args.batch_size}"])
    columns[n] = {
        "rows per batch, per process": " / ".join(
            str(r["local_batch"]) for r in res),
        "input ms per batch, per process": " / ".join(
            f"{r['seconds'] / (args.batches - 1) * 1000:.0f}" for r in res)}
    print(f"{n} process(es): {columns[n]}", flush=True)
  if args.steps > 2:
    for n in (1, 2):
      with tempfile.TemporaryDirectory() as tmp:
        res = launch("step", n, [f"--steps={args.steps}",
                                 f"--batch_size={args.batch_size}",
                                 f"--model_dir={tmp}/m"])
      columns[n]["train step ms (median)"] = (
          f"{res[0]['seconds_per_step'] * 1000:.0f}")
      print(f"{n} process(es): {columns[n]}", flush=True)
  print(side_by_side(columns, args), flush=True)


def side_by_side(columns, args):
  """The figures of 1 and 2 processes as a two-column table."""
  heads = {n: f"{n} process{'es' if n > 1 else ''} x {8 // n} devices"
           for n in columns}
  names = list(columns[1])
  width = max(len(n) for n in names) + 2
  lines = [" " * width + "".join(f"{heads[n]:>26}" for n in columns)]
  for name in names:
    lines.append(f"{name:<{width}}" + "".join(
        f"{columns[n].get(name, '-'):>26}" for n in columns))
  lines.append(f"(input: {args.batches - 1} batches timed after the first; "
               f"step: median of steps 3..{args.steps})")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
