r"""Cost of the ReDial ranking protocol per recommender turn (random weights).

  python bench/ranking_eval.py [--sizes=tiny,small] [--turns=4]
      [--single=32] [--redial_dir=../shared/data/redial]

For each model size (each in its own subprocess, so that peak memory is its
own) it ranks the whole ReDial movie list (`movies_with_mentions.csv`, 6,916
distinct titles) for the first `--turns` test turns that mention a movie,
with `train.inference.CandidateScorer` (one encoder pass per context, all
candidates scored by `EncoderDecoderModel.score_candidates` in batches), and
reports seconds per turn (after one warm-up turn that compiles) and the
process's peak resident memory. It then scores `--single` candidates of one
turn one at a time (`score_batch`, one (context, candidate) pair per forward:
encoder and decoder per candidate) and prints the projected time of a whole
turn that way and the speed-up ratio of candidate batching.
"""

import argparse
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
import jax
import numpy as np

from crs_tasks import features
from crs_tasks import redial_utils
from eval import ranking
from train import inference
from train import model_inputs
from train import models
from train import network

# T5 1.1 shapes: "tiny" is a test-sized model, "small" is t5.1.1.small.
SIZES = {
    "tiny": dict(emb_dim=64, num_heads=4, num_encoder_layers=2,
                 num_decoder_layers=2, head_dim=16, mlp_dim=128),
    "small": dict(emb_dim=512, num_heads=6, num_encoder_layers=8,
                  num_decoder_layers=8, head_dim=64, mlp_dim=1024),
}


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
  params = variables["params"] if "params" in variables else variables
  num_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  return model, params, vocab, num_params


def measure(size: str, redial_dir: str, turns: int, single: int,
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
  score_fn = inference.CandidateScorer(
      model, params,
      task_feature_lengths={"inputs": inputs_length, "targets": 32},
      batch_size=1)
  candidates = [ranking.candidate_reply(t) for t in movies.titles]
  contexts = [{"inputs": ids} for ids in model_inputs.tokenize_texts(
      vocab, ["redial conversation: " + ex["context"].lower()
              for ex in examples], inputs_length)]

  start = time.perf_counter()
  score_fn(contexts[:1], candidates)  # Compiles.
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for context in contexts[1:]:
    scores = score_fn([context], candidates)
  batched_s = (time.perf_counter() - start) / max(1, len(contexts) - 1)
  assert scores.shape == (1, len(candidates)) and np.isfinite(scores).all()

  # One candidate per forward: encoder + decoder for each pair.
  enc = score_fn.encoder_rows(contexts[:1])
  cand = score_fn.candidate_tokens(candidates[:single + 1])

  def pair_batch(row):
    target = cand[row: row + 1]
    decoder_input = np.zeros_like(target)
    decoder_input[:, 1:] = target[:, :-1]
    return {"encoder_input_tokens": enc, "decoder_target_tokens": target,
            "decoder_input_tokens": decoder_input,
            "decoder_loss_weights": (target > 0).astype(np.int32)}

  np.asarray(model.score_batch(params, pair_batch(0)))  # Compiles.
  start = time.perf_counter()
  single_scores = [float(np.asarray(model.score_batch(params,
                                                      pair_batch(i)))[0])
                   for i in range(1, single + 1)]
  single_s = (time.perf_counter() - start) / single
  batched_first = np.asarray(score_fn(contexts[:1], candidates[1:single + 1]))
  max_diff = float(np.max(np.abs(batched_first[0] - single_scores)))
  return {
      "size": size, "num_params": num_params,
      "num_candidates": len(candidates), "turns_timed": len(contexts) - 1,
      "inputs_length": inputs_length, "compile_s": compile_s,
      "batched_s_per_turn": batched_s,
      "single_s_per_candidate": single_s,
      "single_s_per_turn_projected": single_s * len(candidates),
      "speedup": single_s * len(candidates) / batched_s,
      "max_abs_diff_batched_vs_single": max_diff,
      "peak_rss_mib": resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="tiny,small")
  parser.add_argument("--turns", type=int, default=4)
  parser.add_argument("--single", type=int, default=32)
  parser.add_argument("--inputs_length", type=int, default=512)
  parser.add_argument("--redial_dir", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
      "shared", "data", "redial"))
  parser.add_argument("--one", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.one:
    print(json.dumps(measure(args.one, args.redial_dir, args.turns,
                             args.single, args.inputs_length)))
    return
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} cpus")
  for size in args.sizes.split(","):
    out = subprocess.run(
        [sys.executable, __file__, f"--one={size}", f"--turns={args.turns}",
         f"--single={args.single}", f"--inputs_length={args.inputs_length}",
         f"--redial_dir={args.redial_dir}"],
        capture_output=True, text=True, check=False)
    if out.returncode:
      print(out.stderr[-3000:])
      raise SystemExit(f"{size} failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{size}: {result['num_params'] / 1e6:.1f}M params, "
          f"{result['num_candidates']} candidates, inputs "
          f"{result['inputs_length']} tokens; batched "
          f"{result['batched_s_per_turn']:.2f} s/turn "
          f"(mean of {result['turns_timed']}, compile "
          f"{result['compile_s']:.1f} s); one candidate per forward "
          f"{result['single_s_per_candidate'] * 1e3:.1f} ms/candidate -> "
          f"{result['single_s_per_turn_projected']:.1f} s/turn; speed-up "
          f"x{result['speedup']:.1f}; batched vs single max |diff| "
          f"{result['max_abs_diff_batched_vs_single']:.2e}; peak RSS "
          f"{result['peak_rss_mib']:.0f} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
  main()
