r"""Study 2's ranking table: the runs' Recall@k beside baselines on the same
samples (`STAGES=rank bash scripts/run_study2.sh` runs it).

  python scripts/study2_ranking.py --out=/tmp/t5cr_study2 \
      --shared=../shared/data --examples=400 --step=1500 --seeds=0,1 \
      --output_dir=/tmp/t5cr_study2/report_ranking

Reads `<out>/<mixture>_pt_s<seed>/eval_rank/<step>/metrics.json` (written
by `eval.main` with `RANKING_EXAMPLES=<examples>`), scores the baselines
with the same protocols on the same first `--examples` test examples of
`crs_redial_v002`:

- popularity, training split: movies ranked by how often they are a
  recommender turn's target in the task's train split (the fair baseline);
- popularity, nbMentions: by ReDial's `movies_with_mentions.csv` counts,
  which include the test dialogues (a leaky reference, not a baseline);
- repeat-context: the context's movies, most recent first (only useful
  under the standard protocol, where a label may repeat the context);

and writes `ranking.md` (Recall@k with 95% Wilson intervals, samples and
turns; then, from the per-sample ranks each run's `predictions.jsonl`
holds (`label_ranks`), exact McNemar tests of each auxiliary mixture's
hits@k against `redial_only` of the same seed, per seed and pooled),
`ranking.json` and `ranking.png`.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import seqio

import crs_tasks  # pylint: disable=unused-import  (registers the Tasks)
from eval import baselines
from eval import metrics as metrics_lib
from eval import ranking
from eval import reporting
from train import model_inputs

MIXTURES = ("redial_only", "redial_sequences", "redial_tags",
            "t5cr_no_reviews")
TASK = "crs_redial_v002"
LENGTHS = {"inputs": 128, "targets": 32}  # As the study trained.
KS = (1, 10, 50)
PROTOCOLS = ("rank", "rank_dedup")


def baseline_rows(shared: str,
                  examples: int) -> tuple[dict[str, dict], int]:
  """Both protocols of each baseline on the first `examples` test
  examples, and the number of training examples popularity counts."""
  task = seqio.get_mixture_or_task(TASK)
  test = model_inputs.task_examples(task, split="test",
                                    task_feature_lengths=LENGTHS,
                                    num_examples=examples)
  train = model_inputs.task_examples(task, split="train",
                                     task_feature_lengths=LENGTHS)
  movies = ranking.load_movie_list(
      os.path.join(shared, "redial", "movies_with_mentions.csv"))
  protocols = ranking.make_protocols(movies, ks=KS)
  fns = {
      "popularity (train split)": baselines.make_popularity_score_fn(
          movies, baselines.mention_counts(train)),
      "popularity (nbMentions, leaky)": baselines.make_popularity_score_fn(
          movies),
      "repeat-context": baselines.make_repeat_context_score_fn(),
  }
  return {name: ranking.evaluate(fn, test, protocols)
          for name, fn in fns.items()}, len(train)


def run_file(out_dir: str, mixture: str, seed: str, step: int,
             name: str) -> str:
  """A file of a run's ranking evaluation (`eval_rank/<step>/<name>`)."""
  return os.path.join(out_dir, f"{mixture}_pt_s{seed}", "eval_rank",
                      str(step), name)


def run_rows(out_dir: str, step: int, seeds: list[str]) -> dict[str, dict]:
  """`<mixture> s<seed>` -> the metrics of its ranking evaluation."""
  rows = {}
  for seed in seeds:
    for mixture in MIXTURES:
      path = run_file(out_dir, mixture, seed, step, "metrics.json")
      if not os.path.exists(path):
        print(f"missing {path}: run `STAGES=rank bash "
              "scripts/run_study2.sh` first; left out", file=sys.stderr)
        continue
      with open(path, encoding="utf-8") as f:
        rows[f"{mixture} s{seed}"] = json.load(f)["metrics"]
  return rows


def run_label_ranks(out_dir: str, step: int,
                    seeds: list[str]) -> dict[tuple[str, str], dict]:
  """(mixture, seed) -> {(protocol, example index, title): rank}, from the
  `label_ranks` of each run's ranking `predictions.jsonl` (runs without
  them are left out, with a line saying so)."""
  out = {}
  for seed in seeds:
    for mixture in MIXTURES:
      path = run_file(out_dir, mixture, seed, step, "predictions.jsonl")
      if not os.path.exists(path):  # `run_rows` names the missing run.
        continue
      ranks = {}
      with open(path, encoding="utf-8") as f:
        for line in f:
          row = json.loads(line)
          for protocol, titles in row.get("label_ranks", {}).items():
            for title, rank in titles.items():
              ranks[(protocol, row["index"], title)] = rank
      if not ranks:
        print(f"{path} has no `label_ranks` (written by eval.main since "
              "issue 18's paired tests): no paired test for it",
              file=sys.stderr)
        continue
      out[(mixture, seed)] = ranks
  return out


def paired_table(ranks: dict[tuple[str, str], dict], seeds: list[str],
                 baseline: str = "redial_only") -> str:
  """Exact McNemar tests of hits@k (k = 10, 50; both protocols) of each
  mixture against `baseline` of the same seed, on the samples both ranked;
  a cell per seed pair (`reporting.paired_cell`: difference in points, p,
  b/c) and, with several seeds, pooled over the seed pairs."""
  columns = [(p, k) for p in PROTOCOLS for k in (10, 50)]
  header = [f"vs {baseline}"] + [
      f"{'dedup ' if p == 'rank_dedup' else ''}R@{k}" for p, k in columns]
  lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
  for mixture in MIXTURES:
    if mixture == baseline:
      continue
    cells = []
    for protocol, k in columns:
      parts, pooled = [], ([], [])
      for seed in seeds:
        base, mine = ranks.get((baseline, seed)), ranks.get((mixture, seed))
        if base is None or mine is None:
          continue
        keys = sorted(key for key in set(base) & set(mine)
                      if key[0] == protocol)
        first = [base[key] <= k for key in keys]
        second = [mine[key] <= k for key in keys]
        pooled[0].extend(first)
        pooled[1].extend(second)
        parts.append(f"s{seed}: " + reporting.paired_cell(
            metrics_lib.mcnemar(first, second)))
      if len(parts) > 1:
        parts.append("pooled: " + reporting.paired_cell(
            metrics_lib.mcnemar(*pooled)))
      cells.append("; ".join(parts) or "-")
    lines.append(f"| {mixture} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def cell(metrics: dict, protocol: str, k: int) -> str:
  key = f"{protocol}/recall@{k}"
  if key not in metrics:
    return "-"
  low = metrics.get(key + "/ci_low")
  high = metrics.get(key + "/ci_high")
  interval = f" [{low:.1f}, {high:.1f}]" if low is not None else ""
  return f"{metrics[key]:.1f}{interval}"


def table(rows: dict[str, dict]) -> str:
  """A Markdown table: one row per run or baseline."""
  header = ["run"] + [f"{'dedup ' if p == 'rank_dedup' else ''}R@{k}"
                      for p in PROTOCOLS for k in KS] + [
                          "samples (std / dedup)", "turns (std / dedup)"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" + "---:|" * (len(header) - 1)]
  for name, m in rows.items():
    samples = "/".join(f"{int(m.get(f'{p}/num_samples', 0))}"
                       for p in PROTOCOLS)
    turns = "/".join(f"{int(m.get(f'{p}/num_turns', 0))}" for p in PROTOCOLS)
    lines.append("| " + " | ".join(
        [name] + [cell(m, p, k) for p in PROTOCOLS for k in KS]
        + [samples, turns]) + " |")
  return "\n".join(lines)


def plot(rows: dict[str, dict], path: str) -> None:
  """Recall@10 and @50 (standard protocol) with their intervals."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.5),
                           sharey=True)
  names = list(rows)
  for ax, k in zip(axes, (10, 50)):
    key = f"rank/recall@{k}"
    values = [rows[n].get(key, 0.0) for n in names]
    low = [v - rows[n].get(key + "/ci_low", v) for n, v in zip(names, values)]
    high = [rows[n].get(key + "/ci_high", v) - v
            for n, v in zip(names, values)]
    colors = ["tab:gray" if n.startswith(("popularity", "repeat")) else
              "tab:blue" for n in names]
    ax.barh(range(len(names)), values, xerr=[low, high], color=colors,
            capsize=3)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel(f"Recall@{k} (%), standard protocol, 95% Wilson interval")
  fig.suptitle("Study 2 ranking over all 6,916 ReDial movies (step 1,500; "
               "baselines in grey)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="/tmp/t5cr_study2")
  parser.add_argument("--shared", default="../shared/data")
  parser.add_argument("--examples", type=int, default=400)
  parser.add_argument("--step", type=int, default=1500)
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--output_dir", default=None)
  args = parser.parse_args(argv)
  output_dir = args.output_dir or os.path.join(args.out, "report_ranking")
  os.makedirs(output_dir, exist_ok=True)
  rows = run_rows(args.out, args.step, args.seeds.split(","))
  base, train_count = baseline_rows(args.shared, args.examples)
  rows.update(base)
  seeds = args.seeds.split(",")
  paired = paired_table(run_label_ranks(args.out, args.step, seeds), seeds)
  text = (f"Recall@k (%) over all 6,916 ReDial movies on the first "
          f"{args.examples} test examples of `{TASK}` (inputs 128 tokens); "
          f"runs at step {args.step} from the pretrained start; popularity "
          f"(train split) counts the targets of {train_count} training "
          "examples.\n\n" + table(rows) + "\n\n"
          "Paired: exact McNemar tests of hits@k against `redial_only` of "
          "the same seed on the same samples (cell: difference in points, "
          "p, b/c = samples only redial_only / only the mixture hits; "
          "pooled: all seed pairs' samples together).\n\n"
          + paired + "\n")
  with open(os.path.join(output_dir, "ranking.md"), "w",
            encoding="utf-8") as f:
    f.write(text)
  with open(os.path.join(output_dir, "ranking.json"), "w",
            encoding="utf-8") as f:
    json.dump(rows, f, indent=2)
  plot(rows, os.path.join(output_dir, "ranking.png"))
  print(text)
  print(f"wrote {output_dir}/ranking.md, ranking.json, ranking.png")


if __name__ == "__main__":
  main()
