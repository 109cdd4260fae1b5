"""Reads evaluation results from several model dirs into tables and plots.

`eval.evaluation.evaluate` writes `MODEL_DIR/eval/<step>/metrics.json`. This
module reads those files back (`load_run`), groups runs that share a label
(several seeds of one mixture) into mean and spread (`aggregate`), and renders
a Markdown table (`markdown_table`) and PNG plots (`plot_probes`,
`plot_recall_curves`). `write_report` does all of it for `eval/report.py`.

Study diagnostics (README, "The study"), when asked for: the probe table
with the oracle rows of `<probe_dir>/oracles.json` (`probe_table`), exact
McNemar tests of each label against a baseline label on the same pairs
(`paired_table`, from each run's `probe_pairs.jsonl`), and learning curves
over every evaluated step (`plot_learning_curves`).

To add a plot, write a function `(groups, path) -> bool` beside the others
(returning False when there is nothing to plot) and call it from
`write_report`.
"""

import collections
import dataclasses
import json
import math
import os
import re
from typing import Mapping, Optional, Sequence

from eval import metrics as metrics_lib
from eval.probes import probe_lib

import matplotlib

matplotlib.use("Agg")
# pylint: disable-next=g-import-not-at-top,g-bad-import-order
from matplotlib import pyplot as plt

from crs_runtime import cli  # pylint: disable=g-bad-import-order
from crs_runtime import errors  # pylint: disable=g-bad-import-order

_RECALL_RE = re.compile(r"^(?P<prefix>.*?)recall@(?P<k>\d+)$")
_PROBE_RE = re.compile(r"^(?P<prefix>(?:.*/)?probe/(?P<name>[^/]+))/accuracy$")
_MIXTURE_RE = re.compile(
    r"^\s*MIXTURE_OR_TASK_NAME\s*=\s*['\"](?P<name>[^'\"]+)['\"]", re.M
)


@dataclasses.dataclass(frozen=True)
class Run:
  """One evaluated checkpoint.

  Attributes:
    label: row label (mixture name, or as given on the command line).
    model_dir: the model directory the run was read from.
    step: checkpoint step of the evaluation.
    metrics: flat metric name -> value.
  """

  label: str
  model_dir: str
  step: int
  metrics: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Stat:
  """Mean and spread of one metric over the runs of a label.

  Attributes:
    mean: arithmetic mean over the runs that report the metric.
    std: sample standard deviation (ddof=1); 0.0 for a single run.
    n: number of runs that report the metric.
  """

  mean: float
  std: float
  n: int


class NotEvaluatedError(errors.UserError, FileNotFoundError):
  """A model dir that does not exist or has no evaluation (of that step)."""

  def __str__(self) -> str:
    return errors.format_message(self.what, where=self.where, fix=self.fix)


def eval_steps(model_dir: str) -> list[int]:
  """Returns the evaluated steps under `model_dir/eval`, ascending.

  Args:
    model_dir: a model directory.

  Returns:
    Steps `s` for which `model_dir/eval/<s>/metrics.json` exists.
  """
  eval_dir = os.path.join(model_dir, "eval")
  if not os.path.isdir(eval_dir):
    return []
  return sorted(
      int(name)
      for name in os.listdir(eval_dir)
      if name.isdigit()
      and os.path.exists(os.path.join(eval_dir, name, "metrics.json"))
  )


def default_label(model_dir: str) -> str:
  """Label of a run: its mixture from `config.gin`, else the dir name.

  Args:
    model_dir: a model directory.

  Returns:
    `MIXTURE_OR_TASK_NAME` bound in `model_dir/config.gin` when present,
    otherwise the last path component of `model_dir`.
  """
  config_path = os.path.join(model_dir, "config.gin")
  if os.path.exists(config_path):
    with open(config_path, encoding="utf-8") as f:
      match = _MIXTURE_RE.search(f.read())
    if match:
      return match.group("name")
  return os.path.basename(os.path.normpath(model_dir))


def load_run(
    model_dir: str, *, label: Optional[str] = None, step: Optional[int] = None
) -> Run:
  """Reads `model_dir/eval/<step>/metrics.json` (latest step by default).

  Args:
    model_dir: a model directory evaluated by `eval.main`.
    label: row label; `default_label(model_dir)` when None.
    step: evaluated step to read; the latest when None.

  Returns:
    The `Run`.

  Raises:
    NotEvaluatedError: `model_dir` does not exist or has no evaluation (or
      not of that step); a UserError naming `eval.main`.
    ValueError: the JSON has no `metrics` object or a non-numeric value; the
      message names the file and the field.
  """
  if not os.path.isdir(model_dir):
    raise NotEvaluatedError(
        "no such directory", where=model_dir,
        fix="give run directories written by train.main (their MODEL_DIR) "
        "and evaluated by eval.main")
  steps = eval_steps(model_dir)
  if not steps:
    raise NotEvaluatedError(
        f"not evaluated yet: no {os.path.join(model_dir, 'eval')}/<step>/"
        "metrics.json found", where=model_dir,
        fix=f"evaluate it first: {cli.eval_command(model_dir)}")
  step = steps[-1] if step is None else step
  path = os.path.join(model_dir, "eval", str(step), "metrics.json")
  if not os.path.exists(path):
    raise NotEvaluatedError(
        f"step {step} was not evaluated ({path} not found); evaluated "
        f"steps: {steps}", where=model_dir,
        fix=f"omit --step for the latest, or evaluate that step: "
        f"{cli.eval_command(model_dir)} --gin.CHECKPOINT_STEP={step}")
  with open(path, encoding="utf-8") as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from e
  if not isinstance(data.get("metrics"), dict):
    raise ValueError(f"{path}: field 'metrics' missing or not an object")
  metrics = {}
  for name, value in data["metrics"].items():
    if not isinstance(value, (int, float)) or isinstance(value, bool):
      raise ValueError(f"{path}: field 'metrics.{name}' is not a number")
    metrics[name] = float(value)
  return Run(
      label=label or default_label(model_dir),
      model_dir=model_dir,
      step=int(data.get("step", step)),
      metrics=metrics,
  )


def aggregate(runs: Sequence[Run]) -> dict[str, dict[str, Stat]]:
  """Groups runs by label; mean and sample std of every metric.

  Args:
    runs: evaluated runs; runs sharing a label are seeds of one setting.

  Returns:
    label -> metric -> `Stat`, labels in first-seen order. NaN values are
    left out of the statistics.
  """
  values = collections.defaultdict(lambda: collections.defaultdict(list))
  for run in runs:
    by_metric = values[run.label]  # Creates the row even with no metrics.
    for name, value in run.metrics.items():
      if not math.isnan(value):
        by_metric[name].append(value)
  groups = {}
  for label, by_metric in values.items():
    groups[label] = {}
    for name, vals in by_metric.items():
      n = len(vals)
      mean = sum(vals) / n
      std = (
          math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
          if n > 1
          else 0.0
      )
      groups[label][name] = Stat(mean=mean, std=std, n=n)
  return groups


def metric_columns(groups: Mapping[str, Mapping[str, Stat]]) -> list[str]:
  """Every metric name, grouped by family (`gen/`, `rec/`, ..., `probe/`).

  Confidence bounds (probe accuracies and recall@k, `.../ci_low` and
  `.../ci_high`) and probe pair counts are left out of the columns: they are
  shown inside their metric's cell and drawn as error bars; everything else
  is kept.

  Args:
    groups: output of `aggregate`.

  Returns:
    Sorted metric names, with probe accuracies last.
  """
  names = {n for by_metric in groups.values() for n in by_metric}
  names = {
      n
      for n in names
      if not re.search(r"(/ci_low|/ci_high|probe/[^/]+/num_pairs)$", n)
  }

  def key(name):
    k_match = _RECALL_RE.match(name)
    is_probe = "probe/" in name
    if k_match:
      return (is_probe, k_match.group("prefix"), int(k_match.group("k")), "")
    return (is_probe, name, -1, name)

  return sorted(names, key=key)


def format_stat(stat: Optional[Stat], digits: int = 2) -> str:
  """`"12.34"` for one run, `"12.34 ± 0.56"` for several, `"–"` if absent.

  Args:
    stat: a `Stat` or None.
    digits: decimals shown.

  Returns:
    The table cell.
  """
  if stat is None:
    return "–"
  if stat.n > 1:
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"
  return f"{stat.mean:.{digits}f}"


def _cell(by_metric: Mapping[str, Stat], name: str, digits: int) -> str:
  """`format_stat` of `name`; a single run's recall@k with its interval,
  `"12.60 [7.60, 19.40]"`, when `name/ci_low` and `name/ci_high` exist.
  """
  stat = by_metric.get(name)
  low, high = by_metric.get(f"{name}/ci_low"), by_metric.get(f"{name}/ci_high")
  if (stat is not None and stat.n == 1 and low is not None
      and high is not None and _RECALL_RE.match(name)):
    return (f"{stat.mean:.{digits}f} [{low.mean:.{digits}f}, "
            f"{high.mean:.{digits}f}]")
  return format_stat(stat, digits)


def markdown_table(
    groups: Mapping[str, Mapping[str, Stat]],
    columns: Optional[Sequence[str]] = None,
    digits: int = 2,
) -> str:
  """Markdown table: one row per label, one column per metric.

  Args:
    groups: output of `aggregate`.
    columns: metric names to show; `metric_columns(groups)` when None.
    digits: decimals shown.

  Returns:
    The table, ending with a newline. The `runs` column counts the seeds.
    Several runs: `mean ± std`; one run's recall@k: `value [ci_low,
    ci_high]` (its 95% Wilson interval, from `eval.metrics`).
  """
  columns = metric_columns(groups) if columns is None else list(columns)
  header = ["model", "runs"] + columns
  lines = [
      "| " + " | ".join(header) + " |",
      "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
  ]
  for label, by_metric in groups.items():
    runs = max((s.n for s in by_metric.values()), default=0)
    cells = [label, str(runs)]
    cells += [_cell(by_metric, c, digits) for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot_probes(groups: Mapping[str, Mapping[str, Stat]], path: str) -> bool:
  """One panel per probe: accuracy per label with its CI as error bars.

  The error bar spans the mean `ci_low` to the mean `ci_high` over seeds.

  Args:
    groups: output of `aggregate`.
    path: PNG file to write.

  Returns:
    False (and nothing written) when no run has a probe metric.
  """
  probes = collections.OrderedDict()
  for by_metric in groups.values():
    for name in sorted(by_metric):
      match = _PROBE_RE.match(name)
      if match:
        probes.setdefault(match.group("prefix"), match.group("name"))
  if not probes:
    return False
  labels = list(groups)
  fig, axes = plt.subplots(
      1, len(probes), figsize=(3.5 * len(probes) + 1, 3.5), squeeze=False
  )
  for ax, (prefix, name) in zip(axes[0], probes.items()):
    xs, ys, err_low, err_high = [], [], [], []
    for i, label in enumerate(labels):
      acc = groups[label].get(prefix + "/accuracy")
      if acc is None:
        continue
      low = groups[label].get(prefix + "/ci_low")
      high = groups[label].get(prefix + "/ci_high")
      xs.append(i)
      ys.append(acc.mean)
      err_low.append(max(acc.mean - low.mean, 0.0) if low else 0.0)
      err_high.append(max(high.mean - acc.mean, 0.0) if high else 0.0)
    ax.errorbar(xs, ys, yerr=[err_low, err_high], fmt="o", capsize=4)
    ax.axhline(50.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_title(name)
    ax.set_ylabel("pair accuracy")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def plot_recall_curves(
    groups: Mapping[str, Mapping[str, Stat]], path: str
) -> bool:
  """Recall@k against k: one line per label and recall family.

  Error bars: the sample std over seeds, or, for a single run, its
  confidence interval (`recall@k/ci_low` to `ci_high`) when reported.

  Args:
    groups: output of `aggregate`.
    path: PNG file to write.

  Returns:
    False (and nothing written) when no run reports a `...recall@k` metric.
  """
  curves = collections.defaultdict(dict)
  for label, by_metric in groups.items():
    for name, stat in by_metric.items():
      match = _RECALL_RE.match(name)
      if match and "probe/" not in name:
        curves[(label, match.group("prefix"))][int(match.group("k"))] = stat
  if not curves:
    return False
  fig, ax = plt.subplots(figsize=(6, 4))
  for (label, prefix), by_k in sorted(curves.items()):
    ks = sorted(by_k)
    means = [by_k[k].mean for k in ks]
    yerr = [by_k[k].std for k in ks]
    bounds = [(groups[label].get(f"{prefix}recall@{k}/ci_low"),
               groups[label].get(f"{prefix}recall@{k}/ci_high")) for k in ks]
    if all(by_k[k].n == 1 for k in ks) and all(
        low is not None and high is not None for low, high in bounds):
      yerr = [[m - low.mean for m, (low, _) in zip(means, bounds)],
              [high.mean - m for m, (_, high) in zip(means, bounds)]]
    ax.errorbar(
        ks,
        means,
        yerr=yerr,
        marker="o",
        capsize=3,
        label=f"{label} {prefix.rstrip('/')}".strip(),
    )
  ax.set_xscale("log")
  ax.set_xlabel("k")
  ax.set_ylabel("recall@k")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


# ============================ Study diagnostics =============================

# Probe columns of the study tables, dialogue format beside its in-format
# twin (`crs_tasks.probe_io.IN_FORMAT_PROBES`).
STUDY_PROBES = ("recommendation", "recommendation_in_format", "attribute",
                "attribute_in_format", "combination", "description")


def _probe_cell(by_metric: Mapping[str, Stat], probe: str) -> str:
  """`"45.5 [41.6, 49.5]"` for one run, `"45.5 ± 1.1"` for several."""
  acc = by_metric.get(f"probe/{probe}/accuracy")
  if acc is None:
    return "–"
  low = by_metric.get(f"probe/{probe}/ci_low")
  high = by_metric.get(f"probe/{probe}/ci_high")
  if acc.n == 1 and low is not None and high is not None:
    return f"{acc.mean:.1f} [{low.mean:.1f}, {high.mean:.1f}]"
  return f"{acc.mean:.1f} ± {acc.std:.1f}"


def probe_table(groups: Mapping[str, Mapping[str, Stat]],
                oracles: Mapping[str, Mapping[str, Mapping[str, float]]]
                ) -> str:
  """Probe accuracies per label, then one row per oracle (same pairs).

  Args:
    groups: output of `aggregate`.
    oracles: `eval.probes.oracles.read_oracles` (`{probe: {oracle: row}}`).

  Returns:
    A Markdown table: one run's cell is `accuracy [95% Wilson interval]`,
    several runs' `mean ± std`; an oracle's cell adds its ties.
  """
  present = {m for g in groups.values() for m in g} | {
      f"probe/{p}/accuracy" for p in oracles}
  probes = [p for p in STUDY_PROBES if f"probe/{p}/accuracy" in present]
  if not probes:
    return ""
  lines = ["| model | runs | " + " | ".join(probes) + " |",
           "|---|---:|" + "---:|" * len(probes)]
  for label, by_metric in groups.items():
    runs = max((s.n for s in by_metric.values()), default=0)
    lines.append(f"| {label} | {runs} | "
                 + " | ".join(_probe_cell(by_metric, p) for p in probes)
                 + " |")
  names = []
  for by_oracle in oracles.values():
    names += [o for o in by_oracle if o not in names]
  for oracle in names:
    cells = []
    for p in probes:
      row = oracles.get(p, {}).get(oracle)
      cells.append("–" if row is None else (
          f"{row['accuracy']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
          f" ({row['ties']} ties)"))
    lines.append(f"| oracle: {oracle} | – | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def load_pairs(model_dir: str, step: int) -> dict[str, dict[str, bool]]:
  """`{probe: {pair_id: correct}}` of one evaluation ({} without the file)."""
  path = os.path.join(model_dir, "eval", str(step),
                      probe_lib.PROBE_PAIRS_FILE)
  out = collections.defaultdict(dict)
  if not os.path.exists(path):
    return {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        row = json.loads(line)
        out[row["probe"]][row["pair_id"]] = bool(row["correct"])
  return dict(out)


def paired_cell(test: Mapping[str, float]) -> str:
  """`+3.2 pts, p = 0.041 (b/c = 20/39)` of one `metrics.mcnemar`."""
  diff = 100.0 * (test["c"] - test["b"]) / test["n"]
  return (f"{diff:+.1f} pts, p = {test['p_value']:.3g} "
          f"(b/c = {test['b']:.0f}/{test['c']:.0f})")


def paired_table(runs: Sequence[Run], baseline: str) -> str:
  """Exact McNemar tests of every label against `baseline`, per probe.

  The i-th run of a label is paired with the i-th run of the baseline
  (the same seed when both list their seeds in the same order), on the
  pairs both scored. A cell: `+3.2 pts, p = 0.041 (b/c = 20/39)` per seed
  pair, `;`-separated (b: baseline right and the label wrong, c: the
  reverse), then, with several seeds, `pooled:` the same test over all
  seed pairs' items together (a stratified sign test: each seed pair's
  discordant items counted once).

  Args:
    runs: evaluated runs (`load_run`).
    baseline: the label to compare against.

  Returns:
    A Markdown table, or "" when the baseline has no probe pairs.
  """
  by_label = collections.defaultdict(list)
  for run in runs:
    by_label[run.label].append(load_pairs(run.model_dir, run.step))
  base = by_label.get(baseline, [])
  if not any(base):
    return ""
  probes = [p for p in STUDY_PROBES if any(p in b for b in base)]
  lines = [f"| vs {baseline} | " + " | ".join(probes) + " |",
           "|---|" + "---|" * len(probes)]
  for label, pair_sets in by_label.items():
    if label == baseline:
      continue
    cells = []
    for probe in probes:
      parts, pooled = [], ([], [])
      for mine, theirs in zip(pair_sets, base):
        a, b = theirs.get(probe, {}), mine.get(probe, {})
        ids = sorted(set(a) & set(b))
        if not ids:
          continue
        first, second = [a[i] for i in ids], [b[i] for i in ids]
        pooled[0].extend(first)
        pooled[1].extend(second)
        parts.append(paired_cell(metrics_lib.mcnemar(first, second)))
      if len(parts) > 1:
        parts.append("pooled: " + paired_cell(metrics_lib.mcnemar(*pooled)))
      cells.append("; ".join(parts) or "–")
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


CURVE_METRICS = tuple(f"probe/{p}/accuracy" for p in STUDY_PROBES) + (
    "gen/target_logprob", "gen/bleu4", "rank/recall@10")


def plot_learning_curves(
    model_dirs: Sequence[str], labels: Sequence[str], path: str,
    oracles: Mapping[str, Mapping[str, Mapping[str, float]]] = (),
) -> bool:
  """Each metric against the training step: one line per label (the mean
  over its runs evaluated at that step; runs evaluated at one step only are
  left out), probe intervals as error bars (single runs), the oracle levels
  as horizontal lines.

  Args:
    model_dirs: model directories; every evaluated step is read.
    labels: one label per dir.
    path: PNG file to write.
    oracles: `read_oracles`, drawn on the probe panels.

  Returns:
    False (nothing written) when no label has two evaluated steps.
  """
  oracles = dict(oracles or {})
  series = collections.defaultdict(
      lambda: collections.defaultdict(lambda: collections.defaultdict(list)))
  for model_dir, label in zip(model_dirs, labels):
    steps = eval_steps(model_dir)
    if len(steps) < 2:  # Not a curve; it would shift its label's mean.
      continue
    for step in steps:
      run = load_run(model_dir, label=label, step=step)
      for name, value in run.metrics.items():
        series[label][name][step].append(value)
  names = [m for m in CURVE_METRICS
           if any(len(series[l][m]) > 1 for l in series)]
  if not names:
    return False
  cols = 3
  rows = (len(names) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows),
                           squeeze=False)
  for ax, name in zip(axes.flat, names):
    for label in series:
      points = series[label][name]
      if len(points) < 2:
        continue
      steps = sorted(points)
      means = [sum(points[s]) / len(points[s]) for s in steps]
      yerr = None
      if name.startswith("probe/") and all(len(points[s]) == 1
                                           for s in steps):
        base = name[:-len("accuracy")]
        lows = [series[label][base + "ci_low"][s][0] for s in steps]
        highs = [series[label][base + "ci_high"][s][0] for s in steps]
        yerr = [[m - l for m, l in zip(means, lows)],
                [h - m for m, h in zip(means, highs)]]
      ax.errorbar(steps, means, yerr=yerr, marker="o", capsize=2,
                  label=label)
    if name.startswith("probe/"):
      probe = name.split("/")[1]
      ax.axhline(50.0, color="grey", linestyle=":", linewidth=1)
      for i, (oracle, row) in enumerate(oracles.get(probe, {}).items()):
        ax.axhline(row["accuracy"], color=f"C{i + 5}", linestyle="--",
                   linewidth=1, label=f"oracle: {oracle}")
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("training step")
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  handles, texts = [], []
  for ax in axes.flat:
    for h, t in zip(*ax.get_legend_handles_labels()):
      if t not in texts:
        handles.append(h)
        texts.append(t)
  fig.legend(handles, texts, loc="lower center", ncol=4, fontsize=7)
  fig.tight_layout(rect=(0, 0.08, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def write_report(
    *,
    model_dirs: Sequence[str],
    output_dir: str,
    labels: Optional[Sequence[str]] = None,
    step: Optional[int] = None,
    oracles: Optional[Mapping[str, Mapping[str, Mapping[str, float]]]] = None,
    baseline: Optional[str] = None,
) -> dict[str, str]:
  """Writes `report.md`, `probes.png` and `recall_at_k.png` to `output_dir`.

  Args:
    model_dirs: model directories evaluated by `eval.main`.
    output_dir: where the report goes (created if needed).
    labels: one label per model dir (same label = seeds of one setting);
      `default_label` of each dir when None.
    step: evaluated step to read in every dir; the latest when None.
    oracles: the probes' oracle rows (`eval.probes.oracles.read_oracles`):
      adds the probe table with them.
    baseline: a label: adds McNemar tests of every other label against it
      (`paired_table`).

  Returns:
    Kind (`report`, `probes`, `recall`, `curves`) -> path of each file
    written; `learning_curves.png` when some run has several evaluated
    steps.

  Raises:
    ValueError: `labels` and `model_dirs` differ in length.
  """
  if labels is not None and len(labels) != len(model_dirs):
    raise ValueError(
        f"{len(labels)} labels given for {len(model_dirs)} model dirs"
    )
  labels = labels or [None] * len(model_dirs)
  runs = [
      load_run(d, label=l, step=step) for d, l in zip(model_dirs, labels)
  ]
  groups = aggregate(runs)
  os.makedirs(output_dir, exist_ok=True)
  written = {}
  plots = []
  for kind, fn, filename in (
      ("probes", plot_probes, "probes.png"),
      ("recall", plot_recall_curves, "recall_at_k.png"),
  ):
    path = os.path.join(output_dir, filename)
    if fn(groups, path):
      written[kind] = path
      plots.append(f"![{kind}]({filename})")
  curves = os.path.join(output_dir, "learning_curves.png")
  if plot_learning_curves(model_dirs, [r.label for r in runs], curves,
                          oracles or {}):
    written["curves"] = curves
    plots.append("![learning curves](learning_curves.png)")
  sources = [f"- `{r.label}`: `{r.model_dir}` step {r.step}" for r in runs]
  study = []
  if oracles is not None:
    table = probe_table(groups, oracles)
    if table:
      study += ["## Probes, both readings, with oracle rows", "", table]
  if baseline:
    table = paired_table(runs, baseline)
    if table:
      study += [f"## Paired tests against `{baseline}` (exact McNemar)", "",
                table]
  text = "\n".join(
      ["# Evaluation report", "", markdown_table(groups)] + study
      + ["Runs:"]
      + sources
      + [""]
      + plots
  )
  written["report"] = os.path.join(output_dir, "report.md")
  with open(written["report"], "w", encoding="utf-8") as f:
    f.write(text + "\n")
  return written
