r"""Study 2 in mixed precision against float32 (PLAN.md, addendum 3).

  python scripts/study2_precision.py --float32=/tmp/t5cr_study2 \
      --mixed=/tmp/t5cr_study2_mixed --output_dir=docs/study/v2

Reads `<dir>/<mixture>_pt_s<seed>/eval/<step>/metrics.json` and
`probe_pairs.jsonl` of the float32 study (seeds 0 and 1) and of the mixed
runs (seed 0), and writes `precision.md` and `precision.json`:

- per mixture and metric: float32 s0, float32 s1, mixed s0, |mixed - f32
  s0| and the float32 seed-to-seed difference |s0 - s1|; the plan's
  criterion passes where the first is no larger than the second;
- per probe, the exact McNemar test of mixed against float32 on the same
  pairs (paired: did the precision flip which reply a pair prefers?);
- the `t5cr_no_reviews` - `redial_only` difference of seed 0 in both
  precisions, per metric: the plan asks its sign to agree wherever
  float32's pooled paired test called it significant.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from eval import metrics as metrics_lib

MIXTURES = ("redial_only", "t5cr_no_reviews")
PROBES = ("recommendation", "attribute", "combination",
          "recommendation_in_format", "attribute_in_format")
METRICS = (("gen/bleu4", "BLEU-4"),
           ("gen/target_logprob", "target log-prob"),
           ("rec/e2e_recall", "e2e recall")) + tuple(
               (f"probe/{p}/accuracy", f"probe {p}") for p in PROBES)


def run_dir(out, mixture, seed):
  return os.path.join(out, f"{mixture}_pt_s{seed}")


def read_metrics(out, mixture, seed, step):
  path = os.path.join(run_dir(out, mixture, seed), "eval", str(step),
                      "metrics.json")
  with open(path) as f:
    return json.load(f)["metrics"]


def read_pairs(out, mixture, seed, step):
  """{probe: {pair_id: correct}} of one run's probe_pairs.jsonl."""
  path = os.path.join(run_dir(out, mixture, seed), "eval", str(step),
                      "probe_pairs.jsonl")
  pairs = {}
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      pairs.setdefault(row["probe"], {})[row["pair_id"]] = row["correct"]
  return pairs


def criterion(f32_s0, f32_s1, mixed_s0):
  """The plan's test: |mixed - f32 s0| <= |f32 s0 - f32 s1|."""
  gap, spread = abs(mixed_s0 - f32_s0), abs(f32_s0 - f32_s1)
  return {"float32_s0": f32_s0, "float32_s1": f32_s1, "mixed_s0": mixed_s0,
          "precision_gap": gap, "seed_spread": spread,
          "passes": gap <= spread}


def paired(f32_pairs, mixed_pairs):
  """McNemar of mixed against float32 on the pairs both scored."""
  ids = sorted(set(f32_pairs) & set(mixed_pairs))
  test = metrics_lib.mcnemar([mixed_pairs[i] for i in ids],
                             [f32_pairs[i] for i in ids])
  return test | {"pairs": len(ids), "difference": 100.0 * (
      test["b"] - test["c"]) / max(len(ids), 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--float32", default="/tmp/t5cr_study2")
  parser.add_argument("--mixed", default="/tmp/t5cr_study2_mixed")
  parser.add_argument("--step", type=int, default=1500)
  parser.add_argument("--output_dir", default="docs/study/v2")
  args = parser.parse_args()
  table, tests, effect = {}, {}, {}
  for mixture in MIXTURES:
    f0, f1, m0 = (read_metrics(d, mixture, s, args.step) for d, s in (
        (args.float32, 0), (args.float32, 1), (args.mixed, 0)))
    table[mixture] = {key: criterion(f0[key], f1[key], m0[key])
                      for key, _ in METRICS}
    fp, mp = (read_pairs(d, mixture, 0, args.step)
              for d in (args.float32, args.mixed))
    tests[mixture] = {p: paired(fp[p], mp[p]) for p in PROBES if p in fp}
  for key, _ in METRICS:
    effect[key] = {
        prec: table["t5cr_no_reviews"][key][f"{prec}_s0"]
        - table["redial_only"][key][f"{prec}_s0"]
        for prec in ("float32", "mixed")}
  lines = ["# Study 2 in mixed precision against float32 (PLAN.md, "
           "addendum 3)", "",
           f"Step {args.step}, seed 0, same pretrained start, same 500 test "
           "examples and probe pairs; float32 runs in "
           f"`{args.float32}`, mixed (`MATMUL_DTYPE='bfloat16'`) in "
           f"`{args.mixed}` (`python scripts/study2_precision.py`).", "",
           "| mixture | metric | float32 s0 | float32 s1 | mixed s0 | "
           "\\|mixed - f32 s0\\| | \\|f32 s0 - s1\\| | within the seed "
           "spread |", "|---|---|---:|---:|---:|---:|---:|---|"]
  for mixture in MIXTURES:
    for key, name in METRICS:
      r = table[mixture][key]
      lines.append(
          f"| {mixture} | {name} | {r['float32_s0']:.2f} | "
          f"{r['float32_s1']:.2f} | {r['mixed_s0']:.2f} | "
          f"{r['precision_gap']:.2f} | {r['seed_spread']:.2f} | "
          f"{'yes' if r['passes'] else '**no**'} |")
  lines += ["", "Paired per probe pair (exact McNemar, mixed vs float32 of "
            "seed 0; b = pairs only mixed gets right, c = only float32):", "",
            "| mixture | probe | pairs | mixed - f32 (pts) | b/c | p |",
            "|---|---|---:|---:|---:|---:|"]
  for mixture in MIXTURES:
    for probe, t in tests[mixture].items():
      lines.append(f"| {mixture} | {probe} | {t['pairs']} | "
                   f"{t['difference']:+.1f} | {t['b']:.0f}/{t['c']:.0f} | "
                   f"{t['p_value']:.3g} |")
  lines += ["", "`t5cr_no_reviews` - `redial_only`, seed 0, in each "
            "precision:", "", "| metric | float32 | mixed | same sign |",
            "|---|---:|---:|---|"]
  for key, name in METRICS:
    e = effect[key]
    same = (e["float32"] > 0) == (e["mixed"] > 0) or e["float32"] == 0
    lines.append(f"| {name} | {e['float32']:+.2f} | {e['mixed']:+.2f} | "
                 f"{'yes' if same else 'no'} |")
  passed = sum(r["passes"] for t in table.values() for r in t.values())
  total = sum(len(t) for t in table.values())
  failing = [f"{mixture} {name} ({r['float32_s0']:.2f} -> "
             f"{r['mixed_s0']:.2f}, seed spread {r['seed_spread']:.2f})"
             for mixture in MIXTURES for key, name in METRICS
             for r in [table[mixture][key]] if not r["passes"]]
  lines += ["", f"Criterion met for {passed} of {total} (mixture, metric) "
            "cells. Decision by the plan's rule: " + (
                "every cell passes, so the study's configuration names "
                "mixed precision for later runs." if not failing else
                "not every cell passes, so the study stays float32. "
                "Failing: " + "; ".join(failing) + ".")]
  os.makedirs(args.output_dir, exist_ok=True)
  with open(os.path.join(args.output_dir, "precision.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(args.output_dir, "precision.json"), "w") as f:
    json.dump({"table": table, "paired": tests, "effect": effect}, f,
              indent=1, sort_keys=True)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
