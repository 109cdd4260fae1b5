r"""Study throughput: tokens per second of study 2's configuration (packed
rows) against study 1's (one example per row), side by side.

Both train the study's T5 1.1 tiny (gin/models/t5_1_1_tiny.gin) with
Adafactor at 0.01 on real batches of a study mixture at 128/32 tokens,
batch 16, from the same input pipeline `train.main` uses
(`train.input_pipeline.get_dataset`, `pack` on or off); the batches are
read first, so the timed loop is the jit-compiled train step on a 1x1 mesh
(`trainer.compile_steps`), the step `train.main` runs. The two settings
alternate for `--rounds` rounds (the machine's load drifts; medians are
reported):

  python bench/study_throughput.py                      # needs the study data
  python bench/study_throughput.py --mixture=crs_sample_redial_sequences_v002

Prints, per setting: seconds per step, real (non-padding) tokens per second
(encoder + decoder), examples per second (packed rows hold several), and
the ratio packed / unpacked. The real data needs `python -m
crs_tasks.prepare ... --movielens_source=ml-latest-small` first (README).
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _batches(mixture, pack, n, seed=0):
  """`n` batches (numpy) of the study pipeline and their real-token and
  example counts."""
  from train import input_pipeline  # pylint: disable=g-import-not-at-top

  cfg = input_pipeline.DatasetConfig(
      mixture_or_task_name=mixture,
      task_feature_lengths={"inputs": 128, "targets": 32}, split="train",
      batch_size=16, shuffle=True, seed=seed, pack=pack, module="crs_tasks")
  out = []
  for batch in input_pipeline.get_dataset(cfg).take(n).as_numpy_iterator():
    tokens = int((batch["encoder_input_tokens"] != 0).sum()
                 + (batch["decoder_target_tokens"] != 0).sum())
    if pack:  # Segments are numbered 1..k per row.
      examples = int(batch["decoder_segment_ids"].max(axis=1).sum())
    else:
      examples = int((batch["decoder_target_tokens"] != 0).any(axis=1).sum())
    out.append((batch, tokens, examples))
  return out


def _step_fn(pack_example):
  """The study's compiled train step and its initial state."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  from crs_tasks import features  # pylint: disable=g-import-not-at-top
  from train import models  # pylint: disable=g-import-not-at-top
  from train import network  # pylint: disable=g-import-not-at-top
  from train import partitioning  # pylint: disable=g-import-not-at-top
  from train import trainer  # pylint: disable=g-import-not-at-top

  config = network.T5Config(  # gin/models/t5_1_1_tiny.gin
      emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256,
      num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0)
  vocab = features.get_vocabulary()
  model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                     vocab, z_loss=1e-4)
  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  opt = optax.adafactor(0.01)
  shapes = {k: v.shape for k, v in pack_example.items()
            if k in ("encoder_input_tokens", "decoder_input_tokens")}
  state, shardings = trainer.create_train_state(
      model, opt, mesh=mesh, init_rng=jax.random.PRNGKey(0),
      input_shapes=shapes)
  step, _ = trainer.compile_steps(model, opt, mesh=mesh,
                                  state_shardings=shardings)
  return step, state, partitioning.batch_sharding(mesh)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--mixture", default="crs_small_redial_sequences_v002")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  sys.path.insert(0, ROOT)
  import jax  # pylint: disable=g-import-not-at-top

  settings = {"study 1 (unpacked)": False, "study 2 (packed)": True}
  data = {name: _batches(args.mixture, pack, args.steps + 1)
          for name, pack in settings.items()}
  results = {name: [] for name in settings}
  for name in settings:  # Compile both first (time excluded).
    step, state, sharding = _step_fn(data[name][0][0])
    rng = jax.random.PRNGKey(1)
    warm = jax.device_put(data[name][0][0], sharding)
    state, metrics = step(state, warm, rng)
    jax.block_until_ready(metrics)
    data[name] = (step, state, sharding, data[name][1:])
  for _ in range(args.rounds):
    for name in settings:
      step, state, sharding, batches = data[name]
      arrays = [jax.device_put(b, sharding) for b, _, _ in batches]
      start = time.perf_counter()
      for b in arrays:
        state, metrics = step(state, b, jax.random.PRNGKey(1))
      jax.block_until_ready((state, metrics))
      seconds = time.perf_counter() - start
      data[name] = (step, state, sharding, batches)
      tokens = sum(t for _, t, _ in batches)
      examples = sum(e for _, _, e in batches)
      results[name].append((seconds / len(batches), tokens / seconds,
                            examples / seconds))
  print(f"mixture {args.mixture}, batch 16, 128/32, T5 1.1 tiny, "
        f"{args.steps} steps x {args.rounds} rounds (medians)")
  med = {}
  for name, rows in results.items():
    med[name] = [statistics.median(col) for col in zip(*rows)]
    s, tok, ex = med[name]
    print(f"  {name:20s} {s:6.3f} s/step  {tok:8,.0f} real tokens/s  "
          f"{ex:6.1f} examples/s")
  (s1, t1, e1), (s2, t2, e2) = med.values()
  print(f"  packed / unpacked: real tokens/s x{t2 / t1:.2f}, examples/s "
        f"x{e2 / e1:.2f}, s/step x{s2 / s1:.2f}")


if __name__ == "__main__":
  main()
