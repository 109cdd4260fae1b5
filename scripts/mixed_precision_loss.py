r"""float32 vs mixed precision (MATMUL_DTYPE='bfloat16') on the sample run.

Trains the embedded default model (gin/experiments/sample_tiny.gin: T5 1.1
tiny on the bundled `crs_sample_t5cr_v002` mixture) twice with the same
seeds, once in float32 and once with bf16 matmul operands and float32
accumulation, and plots both loss curves with their relative difference:

  nice -n 19 python scripts/mixed_precision_loss.py --steps=200

Then, on the float32 run's final checkpoint, compares the two precisions at
inference: greedy decodes and target log-likelihoods of the first
`--examples` `crs_sample_redial_v002` test dialogues, and the rank of each
target movie among all the sample movie list's titles (the ranking
protocol's scores). Writes docs/precision/loss_curves.png and
docs/precision/summary.json and prints the figures the README quotes.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from crs_runtime import allocator

if __name__ == "__main__":
  allocator.maybe_reexec()  # tcmalloc, as our commands (same numbers)

import gin
import numpy as np

from crs_runtime import gin_flags
from crs_tasks import metrics as task_metrics
from eval import ranking
from train import inference
from train import main as train_main
from train import model_inputs
from train import models
from train import network

MOVIES = os.path.join(ROOT, "crs_tasks/sample_data/redial/"
                      "movies_with_mentions.csv")
POLICIES = ("float32", "bfloat16")


def train_run(model_dir, matmul_dtype, args):
  """Trains sample_tiny.gin for `args.steps` steps; returns the result."""
  steps = args.steps
  gin.clear_config()
  gin_flags.parse_gin(
      ["experiments/sample_tiny.gin"],
      [f"MODEL_DIR = '{model_dir}'", f"MATMUL_DTYPE = '{matmul_dtype}'",
       f"TRAIN_STEPS = {steps}", f"EVAL_PERIOD = {steps}",
       f"CHECKPOINT_PERIOD = {steps}", "LOG_PERIOD = 25",
       f"BATCH_SIZE = {args.batch_size}",
       f"TASK_FEATURE_LENGTHS = {_lengths(args)}"])
  start = time.perf_counter()
  result = train_main.train_using_gin(gin_config_str=gin.config_str())
  print(f"{matmul_dtype}: {steps} steps in "
        f"{time.perf_counter() - start:.0f} s", flush=True)
  return result


def _lengths(args):
  return {"inputs": args.inputs_length, "targets": args.targets_length}


def with_matmul_dtype(model, matmul_dtype):
  """The same model with another MATMUL_DTYPE (same parameters)."""
  config = dataclasses.replace(model.module.config, matmul_dtype=matmul_dtype,
                               dropout_rate=0.0)
  return models.EncoderDecoderModel(
      network.Transformer(config), model.input_vocabulary,
      model.output_vocabulary)


def inference_numerics(model, params, num_examples, lengths):
  """float32 vs mixed on one checkpoint: decodes, scores and ranks."""
  examples = [
      ex for ex in model_inputs.task_examples(
          "crs_sample_redial_v002", split="test",
          task_feature_lengths=lengths, num_examples=4 * num_examples)
      if ranking.titles_of(ex, "target_movies")][:num_examples]
  movies = ranking.load_movie_list(MOVIES)
  candidates = [ranking.candidate_reply(t) for t in movies.titles]
  out = {}
  for policy in POLICIES:
    m = with_matmul_dtype(model, policy)
    texts = inference.generate(m, params, examples,
                               task_feature_lengths=lengths,
                           progress=False)
    scores = inference.score_targets(m, params, examples,
                                 task_feature_lengths=lengths)
    cand = inference.CandidateScorer(m, params, task_feature_lengths=lengths)(
        examples, candidates)
    labels = [[movies.index[k] for k in map(
        task_metrics.normalize_title,
        ranking.titles_of(ex, "target_movies")) if k in movies.index]
              for ex in examples]
    ranks = ranking.label_ranks(cand, labels, [[] for _ in examples])
    out[policy] = dict(texts=texts, scores=scores, cand=cand, ranks=ranks)
  a, b = out["float32"], out["bfloat16"]
  ranks_a, ranks_b = np.array(a["ranks"]), np.array(b["ranks"])
  top10 = [len(set(np.argsort(-x)[:10]) & set(np.argsort(-y)[:10])) / 10
           for x, y in zip(a["cand"], b["cand"])]
  return dict(
      examples=len(examples), candidates=len(candidates),
      labels=int(ranks_a.size),
      same_greedy_decode=float(np.mean(
          [x == y for x, y in zip(a["texts"], b["texts"])])),
      target_score_max_abs_diff=float(np.max(np.abs(a["scores"]
                                                    - b["scores"]))),
      target_score_max_rel_diff=float(np.max(
          np.abs(a["scores"] - b["scores"]) / np.abs(a["scores"]))),
      candidate_score_max_abs_diff=float(np.max(np.abs(a["cand"]
                                                       - b["cand"]))),
      label_ranks_changed=float(np.mean(ranks_a != ranks_b)),
      # By more than 1% of the candidates (8 places of 813).
      label_ranks_moved_over_1pct=float(np.mean(
          np.abs(ranks_a - ranks_b) > 0.01 * len(candidates))),
      label_rank_max_abs_change=int(np.max(np.abs(ranks_a - ranks_b))),
      label_rank_median_f32=float(np.median(ranks_a)),
      top10_overlap_mean=float(np.mean(top10)))


def smooth(values, window):
  kernel = np.ones(window) / window
  return np.convolve(values, kernel, mode="valid")


def plot(losses, summary, path):
  """Both loss curves and their relative difference, to `path` (PNG)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  steps = np.arange(1, len(losses["float32"]) + 1)
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                    height_ratios=(3, 2))
  for policy, label in (("float32", "float32"),
                        ("bfloat16", "mixed (bf16 operands, f32 accum.)")):
    top.plot(steps, losses[policy], label=label, lw=1)
  top.set_ylabel("loss per target token")
  top.set_title("sample_tiny.gin, same seeds: float32 vs MATMUL_DTYPE="
                "'bfloat16'")
  top.legend()
  rel = summary["relative_difference_per_step"]
  bottom.plot(steps, rel, lw=0.7, color="gray", label="per step")
  window = summary["smoothing_window"]
  bottom.plot(steps[window - 1:], smooth(rel, window), color="black",
              label=f"mean of {window} steps")
  bottom.set_ylabel("|mixed - f32| / f32")
  bottom.set_xlabel("step")
  bottom.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--examples", type=int, default=16)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--inputs_length", type=int, default=128)
  parser.add_argument("--targets_length", type=int, default=32)
  parser.add_argument("--out_dir", default=os.path.join(ROOT, "docs",
                                                        "precision"))
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  losses, results = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    for policy in POLICIES:
      results[policy] = train_run(os.path.join(tmp, policy), policy,
                                  args)
      losses[policy] = [float(results[policy].losses[s])
                        for s in sorted(results[policy].losses)]
  a, b = np.array(losses["float32"]), np.array(losses["bfloat16"])
  rel = np.abs(b - a) / a
  window = 20
  smoothed = np.abs(smooth(b, window) - smooth(a, window)) / smooth(a, window)
  summary = dict(
      steps=args.steps, batch_size=args.batch_size,
      task_feature_lengths=_lengths(args), smoothing_window=window,
      max_relative_difference=float(rel.max()),
      mean_relative_difference=float(rel.mean()),
      max_relative_difference_smoothed=float(smoothed.max()),
      final_loss={p: losses[p][-1] for p in POLICIES},
      relative_difference_per_step=[float(x) for x in rel])
  print(f"loss per target token over {args.steps} steps: max relative "
        f"difference {rel.max():.4f} (step {int(rel.argmax()) + 1}), mean "
        f"{rel.mean():.4f}, max of the {window}-step means "
        f"{smoothed.max():.4f}; final f32 {a[-1]:.4f}, mixed {b[-1]:.4f}")
  f32 = results["float32"]
  summary["inference"] = inference_numerics(f32.model, f32.params,
                                            args.examples, _lengths(args))
  print("inference on the float32 checkpoint, mixed vs float32: "
        + json.dumps(summary["inference"]))
  plot(losses, summary, os.path.join(args.out_dir, "loss_curves.png"))
  summary["losses"] = losses
  with open(os.path.join(args.out_dir, "summary.json"), "w",
            encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
  print(f"wrote {args.out_dir}/loss_curves.png and summary.json")


if __name__ == "__main__":
  main()
