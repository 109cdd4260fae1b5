r"""Cost of the ReDial ranking protocol per recommender turn, against its floor.

  python bench/ranking_eval.py [--sizes=tiny,small] [--turns=4]
      [--reference_turns=1] [--inputs_length=128]
      [--redial_dir=../shared/data/redial]

Ranking scores every movie of `movies_with_mentions.csv` (6,916 distinct
titles) as the reply `@ Title (Year) @` of each recommender turn. Each
target position needs the 32,128-way log-softmax of the vocabulary
projection: that projection is the floor. Over the 6,916 candidates there
are 63,940 target positions but 39,287 distinct decoder prefixes, and
`EncoderDecoderModel.score_candidates` projects each distinct prefix once.

For each model size (a random T5 1.1: "tiny" is `gin/models/t5_1_1_tiny.gin`,
the study's model; "small" is t5.1.1.small), in its own subprocess, it
measures on the first `--turns` test turns that mention a movie:

- this machine's matmul speed, `[256, e] x [e, 32,128]` float32 (the
  projection's own shape), GFLOP/s;
- the floor: distinct prefixes x vocabulary x width x 2 FLOP at that speed
  (and the floor without prefix sharing: every target position);
- `score_candidates` today (seconds per turn, one context per call, after
  a warm-up turn that compiles);
- the reference: the previous implementation, run here side by side (every
  target position projected and log-softmaxed, candidates sorted by length
  in chunks: what `score_candidates` did before prefix sharing), on
  `--reference_turns` turns, and the largest relative difference of the
  two scores;
- the estimated time of the full standard protocol (3,617 test turns).
"""

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from crs_tasks import features
from crs_tasks import redial_utils
from eval import ranking
from train import model_inputs
from train import models
from train import network

# T5 1.1 shapes: "tiny" is gin/models/t5_1_1_tiny.gin (the study's model),
# "small" is t5.1.1.small.
SIZES = {
    "tiny": dict(emb_dim=128, num_heads=4, num_encoder_layers=2,
                 num_decoder_layers=2, head_dim=32, mlp_dim=256),
    "small": dict(emb_dim=512, num_heads=6, num_encoder_layers=8,
                  num_decoder_layers=8, head_dim=64, mlp_dim=1024),
}
STANDARD_PROTOCOL_TURNS = 3617  # eval/ranking.py: official test split.
TARGETS_LENGTH = 32


def build_model(size: str):
  """A randomly initialised T5 1.1 model of `size` and its params."""
  vocab = features.get_vocabulary()
  config = network.T5Config(
      vocab_size=32128, mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=False, dtype="float32", **SIZES[size])
  model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                     vocab)
  variables = model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (1, 16), "decoder_input_tokens": (1, 8)})
  params = nn.meta.unbox(variables["params"])
  num_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  return model, params, vocab, num_params


def token_rows(rows, length: int) -> np.ndarray:
  """0-padded int32 [N, length] of token lists."""
  out = np.zeros((len(rows), length), np.int32)
  for i, row in enumerate(rows):
    out[i, : len(row)] = row[:length]
  return out


# --------------------- The reference: before prefix sharing -----------------


@functools.partial(jax.jit, static_argnums=0)
def _reference_chunk(module, params, encoded, enc, cand):
  b, c = enc.shape[0], cand.shape[0]
  targets = jnp.tile(cand, (b, 1))
  inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))
  logits = module.apply(
      {"params": params}, encoded, enc, inputs, targets,
      enable_dropout=False, rows_per_context=c, method=module.decode)
  token_lp = jnp.take_along_axis(logits, targets[..., None], axis=-1)[
      ..., 0] - jax.nn.logsumexp(logits, axis=-1)
  return jnp.sum(token_lp * (targets > 0), axis=-1).reshape(b, c)


def reference_scores(model, params, enc, cand, chunk_rows: int = 128):
  """The previous `score_candidates`: every target position's logits,
  candidates sorted by length, chunks cut to a multiple of 8 tokens."""
  enc = jnp.asarray(enc)
  num, max_len = cand.shape
  chunk = max(1, min(num, chunk_rows // enc.shape[0]))
  lengths = np.sum(cand > 0, axis=1)
  order = np.argsort(lengths, kind="stable")
  encoded = model.module.apply({"params": params}, enc, enable_dropout=False,
                               method=model.module.encode)
  out = np.zeros((enc.shape[0], num), np.float32)
  for start in range(0, num, chunk):
    idx = order[start:start + chunk]
    width = min(max_len, max(8, -(-int(lengths[idx].max()) // 8) * 8))
    block = np.zeros((chunk, width), np.int32)
    block[: len(idx)] = cand[idx, :width]
    scores = _reference_chunk(model.module, params, encoded, enc,
                              jnp.asarray(block))
    out[:, idx] = np.asarray(scores)[:, : len(idx)]
  return out


# ------------------------------- Measuring ----------------------------------


def matmul_gflops(emb_dim: int, rows: int = 256, repeats: int = 20) -> float:
  """Median float32 GFLOP/s of [rows, e] x [e, 32,128] on this machine."""
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.randn(rows, emb_dim).astype(np.float32))
  w = jnp.asarray(rng.randn(emb_dim, 32128).astype(np.float32))
  f = jax.jit(lambda a, b: a @ b)
  f(x, w).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    f(x, w).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * rows * emb_dim * 32128 / float(np.median(times)) / 1e9


def measure(size: str, redial_dir: str, turns: int, reference_turns: int,
            inputs_length: int) -> dict:
  """Runs one size; returns its numbers."""
  movies = ranking.load_movie_list(f"{redial_dir}/movies_with_mentions.csv")
  examples = [
      ex for ex in redial_utils.load_examples(
          f"{redial_dir}/test_data.jsonl",
          movie_titles=redial_utils.load_movie_titles(
              f"{redial_dir}/movies_with_mentions.csv"))
      if ex["target_movies"]][: turns + 1]
  model, params, vocab, num_params = build_model(size)
  cand = token_rows(model_inputs.tokenize_texts(
      vocab, [ranking.candidate_reply(t) for t in movies.titles],
      TARGETS_LENGTH), TARGETS_LENGTH)
  contexts = token_rows(model_inputs.tokenize_texts(
      vocab, ["redial conversation: " + ex["context"].lower()
              for ex in examples], inputs_length), inputs_length)
  prefixes = models.candidate_prefixes(cand)
  positions = int(np.sum(prefixes.ids >= 0))
  emb_dim = SIZES[size]["emb_dim"]
  gflops = matmul_gflops(emb_dim)
  floor_s = 2 * prefixes.num_prefixes * 32128 * emb_dim / gflops / 1e9
  floor_unshared_s = 2 * positions * 32128 * emb_dim / gflops / 1e9

  start = time.perf_counter()
  model.score_candidates(params, contexts[:1], cand)  # Compiles.
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  now = [np.asarray(model.score_candidates(params, contexts[i: i + 1], cand))
         for i in range(1, len(contexts))]
  now_s = (time.perf_counter() - start) / max(1, len(contexts) - 1)

  reference_scores(model, params, contexts[:1], cand)  # Compiles.
  start = time.perf_counter()
  ref = [reference_scores(model, params, contexts[i: i + 1], cand)
         for i in range(1, reference_turns + 1)]
  ref_s = (time.perf_counter() - start) / max(1, reference_turns)
  rel = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))
            for a, b in zip(now, ref))
  return {
      "size": size, "num_params": num_params, "emb_dim": emb_dim,
      "num_candidates": len(cand), "target_positions": positions,
      "distinct_prefixes": prefixes.num_prefixes,
      "inputs_length": inputs_length, "turns_timed": len(contexts) - 1,
      "reference_turns_timed": reference_turns,
      "matmul_gflops": gflops, "floor_s_per_turn": floor_s,
      "floor_unshared_s_per_turn": floor_unshared_s,
      "compile_s": compile_s, "s_per_turn": now_s,
      "reference_s_per_turn": ref_s, "ratio_to_floor": now_s / floor_s,
      "reference_ratio_to_floor": ref_s / floor_s,
      "speedup": ref_s / now_s,
      "max_rel_diff_vs_reference": rel,
      "standard_protocol_hours": now_s * STANDARD_PROTOCOL_TURNS / 3600,
      "reference_standard_protocol_hours":
          ref_s * STANDARD_PROTOCOL_TURNS / 3600,
      "peak_rss_mib": resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="tiny,small")
  parser.add_argument("--turns", type=int, default=4)
  parser.add_argument("--reference_turns", type=int, default=1)
  parser.add_argument("--inputs_length", type=int, default=128)
  parser.add_argument("--redial_dir", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
      "shared", "data", "redial"))
  parser.add_argument("--one", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.one:
    print(json.dumps(measure(args.one, args.redial_dir, args.turns,
                             args.reference_turns, args.inputs_length)))
    return
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} cpus, load average "
        f"{os.getloadavg()[0]:.1f}", flush=True)
  for size in args.sizes.split(","):
    out = subprocess.run(
        [sys.executable, __file__, f"--one={size}", f"--turns={args.turns}",
         f"--reference_turns={args.reference_turns}",
         f"--inputs_length={args.inputs_length}",
         f"--redial_dir={args.redial_dir}"],
        capture_output=True, text=True, check=False)
    if out.returncode:
      print(out.stderr[-3000:])
      raise SystemExit(f"{size} failed")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{size} ({r['num_params'] / 1e6:.1f}M params, width "
          f"{r['emb_dim']}, inputs {r['inputs_length']}): "
          f"{r['num_candidates']} candidates, {r['target_positions']} target "
          f"positions, {r['distinct_prefixes']} distinct prefixes; matmul "
          f"{r['matmul_gflops']:.0f} GFLOP/s -> floor "
          f"{r['floor_s_per_turn']:.2f} s/turn (unshared "
          f"{r['floor_unshared_s_per_turn']:.2f})\n"
          f"  now       {r['s_per_turn']:.2f} s/turn = "
          f"{r['ratio_to_floor']:.2f}x floor (mean of {r['turns_timed']}); "
          f"standard protocol (3,617 turns) "
          f"{r['standard_protocol_hours']:.2f} h\n"
          f"  reference {r['reference_s_per_turn']:.2f} s/turn = "
          f"{r['reference_ratio_to_floor']:.2f}x floor (mean of "
          f"{r['reference_turns_timed']}); standard protocol "
          f"{r['reference_standard_protocol_hours']:.2f} h\n"
          f"  speed-up x{r['speedup']:.2f}; max relative difference "
          f"{r['max_rel_diff_vs_reference']:.1e}; peak RSS "
          f"{r['peak_rss_mib']:.0f} MiB", flush=True)
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
  main()
