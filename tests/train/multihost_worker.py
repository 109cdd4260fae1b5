"""One process of the multi-process tests (tests/train/multihost_test.py).

  XLA_FLAGS=--xla_force_host_platform_device_count=4 python \
    tests/train/multihost_worker.py --out=/tmp/o --model_dir=/tmp/m \
    --steps=6 --process_count=2 --process_index=0 --port=12345

Trains the tiny T5 on conftest's toy task (48 train examples, unshuffled so
that 6 steps of 8 rows are exactly one epoch) on a 4x2 mesh, reading 2 input
shards, and writes `<out>.<process>.json` (the per-step losses, training-eval
metrics) and `<out>.<process>.rows.jsonl` (the rows, i.e. encoder inputs,
this process built at each step, flushed as they are built). `--kill_after=K` makes
the process SIGKILL itself once checkpoint K is on disk, at its next fetch
of a batch.
"""

import argparse
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # Repository.
sys.path.insert(0, HERE)  # conftest's toy task.

LENGTHS = {"inputs": 9, "targets": 6}


def parse_args(argv):
  p = argparse.ArgumentParser()
  p.add_argument("--out", required=True)
  p.add_argument("--model_dir", required=True)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--process_count", type=int, default=1)
  p.add_argument("--process_index", type=int, default=0)
  p.add_argument("--port", type=int, default=0)
  p.add_argument("--kill_after", type=int, default=0)
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--mesh", default="4,2")
  p.add_argument("--timeout", type=int, default=60)
  return p.parse_args(argv)


def main(argv):
  args = parse_args(argv)
  from train import distributed  # pylint: disable=g-import-not-at-top
  if args.process_count > 1:
    distributed.initialize(
        f"127.0.0.1:{args.port}", args.process_count, args.process_index,
        timeout_s=args.timeout)
  # pylint: disable=g-import-not-at-top
  import optax
  import seqio.test_utils
  import conftest
  from train import input_pipeline, models, network, trainer
  # pylint: enable=g-import-not-at-top

  conftest.register_toy_tasks()
  vocab = seqio.test_utils.sentencepiece_vocab()
  model = models.EncoderDecoderModel(network.Transformer(network.T5Config(
      vocab_size=32, emb_dim=16, num_heads=2, num_encoder_layers=2,
      num_decoder_layers=2, head_dim=4, mlp_dim=32,
      mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=False)), vocab, vocab)

  def cfg(split):
    return input_pipeline.DatasetConfig(
        mixture_or_task_name=conftest.TOY_TASK, task_feature_lengths=LENGTHS,
        split=split, batch_size=args.batch_size, shuffle=False, seed=7)

  rows = {}
  rows_file = open(f"{args.out}.{args.process_index}.rows.jsonl", "a")
  real_next = input_pipeline.BatchIterator.__next__
  ckpt = os.path.join(args.model_dir, "checkpoints", str(args.kill_after))

  def recording_next(self):
    # The first fetch after checkpoint K was issued (the trainer fetches
    # batch K+1 before saving K, to check the weights on it).
    if args.kill_after and self.position > args.kill_after:
      while not os.path.isdir(ckpt):  # Finalized (renamed from a tmp dir).
        time.sleep(0.05)
      os.kill(os.getpid(), signal.SIGKILL)
    batch = real_next(self)
    rows[self.position] = batch["encoder_input_tokens"].tolist()
    rows_file.write(json.dumps([self.position, rows[self.position]]) + "\n")
    rows_file.flush()  # Survives the kill.
    return batch

  input_pipeline.BatchIterator.__next__ = recording_next
  result = trainer.train(
      model=model, optimizer=optax.adamw(0.01),
      train_dataset_cfg=cfg("train"),
      train_eval_dataset_cfg=cfg("validation"),
      model_dir=args.model_dir, total_steps=args.steps,
      eval_period=args.steps, eval_steps=None, checkpoint_period=3,
      mesh_shape=tuple(int(x) for x in args.mesh.split(",")),
      num_input_shards=2, log_period=1,
      learning_rate_fn=optax.constant_schedule(0.01), random_seed=5)
  out = {
      "losses": {str(k): v for k, v in result.losses.items()},
      "eval": result.eval_metrics.get(args.steps, {}),
      "rows": {str(k): v for k, v in rows.items()},
      "start_step": result.start_step,
      "process_count": trainer.jax.process_count(),
  }
  with open(f"{args.out}.{args.process_index}.json", "w") as f:
    json.dump(out, f)


if __name__ == "__main__":
  main(sys.argv[1:])
