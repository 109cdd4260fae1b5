r"""Scores a checkpoint (or a baseline) on built probe sets.

The probes are built by `python -m crs_tasks.build_probes` (beside their
builder, `crs_tasks/probe_builders.py`). Score a checkpoint
(`train.checkpointing.load_model`) on built probes:

  python -m eval.probes.main --probe_dir=/tmp/probes \
      --checkpoint_path=/tmp/t5cr \
      --output=/tmp/t5cr/probes.json

The popularity baseline (prefer the reply naming the more popular movie;
below 50% because the negatives are popular movies):

  python -m eval.probes.main --probe_dir=/tmp/probes --popularity_baseline \
      --movielens_dir=../shared/data/movielens

It ends with where its outputs are and the next command: after scoring, the
full evaluation of the checkpoint with these probes (`eval.main`); after the
baseline alone, training the sample model and scoring it.
"""

import json
import os
import shlex
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow and JAX load, so their start-up logs reach the
# command's log file (a no-op unless this module is the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

from crs_tasks import movie_relatedness
from crs_tasks import probe_builders as builders
from crs_tasks import probe_io
from eval import baselines
from eval import evaluation
from eval.probes import oracles as oracles_lib
from eval.probes import probe_lib
from train import checkpointing

_MOVIELENS_DIR = flags.DEFINE_string("movielens_dir", None, "MovieLens dir.")
_PROBES = flags.DEFINE_list("probes", list(probe_io.PROBE_NAMES), "Probes.")
_ORACLES = flags.DEFINE_bool(
    "oracles", False,
    "Write <probe dir>/oracles.json: the co-occurrence, PMI^2 and "
    "popularity oracles on the probe pairs, from the ML-sequences task's "
    "training users (--movielens_dir); eval.report prints them.")
_PROBE_DIR = flags.DEFINE_string("probe_dir", None, "Built probes to score.")
_CHECKPOINT_PATH = flags.DEFINE_string(
    "checkpoint_path", None,
    "Checkpoint to score: a training run dir (MODEL_DIR) or one of its "
    "checkpoints/<step>.")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Deprecated: --checkpoint_path.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (None: latest).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Pairs per batch.")
_OUTPUT = flags.DEFINE_string("output", None, "Metrics JSON path.")
_POPULARITY_BASELINE = flags.DEFINE_bool(
    "popularity_baseline", False,
    "Score the probes (--probe_dir) with MovieLens popularity "
    "(--movielens_dir) instead of a model: the pair accuracy of preferring "
    "the more popular movie.")


def movielens_popularity(movielens_dir: str) -> dict[str, float]:
  """Lower-cased probe title -> number of liked sequences it is in.

  The same popularity (and titles) as the probe builders use.
  """
  data = builders.load_probe_data(movielens_dir)
  counts = movie_relatedness.cooccurrence(data.sequences).popularity
  return {data.movies[m].title.lower(): float(n) for m, n in counts.items()
          if m in data.movies}


def popularity_baseline(*, probe_dir: str, movielens_dir: str,
                        probes: Sequence[str]) -> dict[str, float]:
  """Probe metrics of the popularity scorer (`baselines`)."""
  score_fn = baselines.make_popularity_pair_score_fn(
      movielens_popularity(movielens_dir))
  metrics = {}
  for name in probes:
    path = os.path.join(probe_dir, f"{name}.jsonl")
    if os.path.exists(path):
      metrics.update(probe_lib.score_probe(
          score_fn, probe_lib.load_probe_examples(path), name=name))
  return metrics


def score(
    *, probe_dir: str, model_dir: str, step: Optional[int],
    probes: Sequence[str], batch_size: int,
) -> dict[str, float]:
  """Probe metrics of the latest (or `step`) checkpoint of `model_dir`:
  the probes' Tasks scored as `eval.main` scores them (the same lengths,
  `evaluation.probe_scores`), so both commands give the same numbers."""
  model, params, step = checkpointing.load_model(model_dir, step=step)
  metrics = {"step": float(step)}
  for probe in probe_lib.load_probes(probe_dir, names=probes).values():
    # No bar here: this command's stderr is kept for warnings only.
    positive, negative = evaluation.probe_scores(
        model, params, probe, batch_size=batch_size, progress=False)
    metrics.update(probe_lib.probe_metrics(probe, positive, negative)[0])
  return metrics


_SAMPLE_RUN = "/tmp/t5cr_sample"  # The README's sample run directory.


def next_commands(*, probe_dir: str, checkpoint_path: Optional[str],
                  movielens_dir: Optional[str],
                  baseline_done: bool) -> list[str]:
  """What to run after this command (see the module docstring)."""
  probes = shlex.quote(probe_dir)
  if checkpoint_path:
    model_dir, _ = checkpointing.split_checkpoint_path(
        checkpoint_path, check=False)
    name, lengths = checkpointing.trained_on(model_dir)
    return [cli.eval_command(checkpoint_path, name, lengths, probe_dir)]
  if movielens_dir and not baseline_done:
    return [f"python -m eval.probes.main --probe_dir={probes} "
            "--popularity_baseline "
            f"--movielens_dir={shlex.quote(movielens_dir)}"]
  return ["python -m train.main --gin_file=gin/experiments/sample_tiny.gin "
          f"--gin.MODEL_DIR={cli.gin_string(_SAMPLE_RUN)}",
          f"python -m eval.probes.main --probe_dir={probes} "
          f"--checkpoint_path={_SAMPLE_RUN}"]


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  checkpoint_path = _CHECKPOINT_PATH.value
  if _MODEL_DIR.value:
    print("warning: --model_dir is deprecated; use --checkpoint_path",
          file=sys.stderr, flush=True)
    checkpoint_path = checkpoint_path or _MODEL_DIR.value
  if not (checkpoint_path or _POPULARITY_BASELINE.value or _ORACLES.value):
    raise app.UsageError("pass --checkpoint_path, "
                         "--popularity_baseline and/or --oracles")
  log_dir = (os.path.dirname(os.path.abspath(_OUTPUT.value)) if _OUTPUT.value
             else None)
  log = cli.log_to(log_dir)
  outputs = []
  movielens_dir = _MOVIELENS_DIR.value
  if _ORACLES.value:
    if not _MOVIELENS_DIR.value:
      raise app.UsageError("--oracles needs --movielens_dir")
    probe_dir = _PROBE_DIR.value
    if not probe_dir:
      raise app.UsageError("--oracles needs --probe_dir")
    rows = oracles_lib.probe_oracles(
        probe_dir, oracles_lib.load_training_stats(_MOVIELENS_DIR.value))
    for probe, by_oracle in rows.items():
      for oracle, row in by_oracle.items():
        print(f"oracle {oracle} probe/{probe}/accuracy: "
              f"{row['accuracy']:.4f} ({row['ties']} ties of "
              f"{row['num_pairs']})")
    outputs.append(os.path.join(probe_dir, oracles_lib.ORACLES_FILE))
  if _POPULARITY_BASELINE.value:
    if not _MOVIELENS_DIR.value:
      raise app.UsageError("--popularity_baseline needs --movielens_dir")
    metrics = popularity_baseline(
        probe_dir=_PROBE_DIR.value,
        movielens_dir=_MOVIELENS_DIR.value, probes=_PROBES.value)
    for name in sorted(metrics):
      print(f"popularity {name}: {metrics[name]:.4f}")
  if checkpoint_path:
    metrics = score(
        probe_dir=_PROBE_DIR.value,
        model_dir=checkpoint_path, step=_STEP.value, probes=_PROBES.value,
        batch_size=_BATCH_SIZE.value,
    )
    for name in sorted(metrics):
      print(f"{name}: {metrics[name]:.4f}")
    if _OUTPUT.value:
      with open(_OUTPUT.value, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
      outputs.append(_OUTPUT.value)
  print("\nOutputs: " + (", ".join(outputs) or
                         "none written (the metrics are above)")
        + (f"; log: {log}" if log else ""))
  print(cli.next_command(*next_commands(
      probe_dir=_PROBE_DIR.value,
      checkpoint_path=checkpoint_path, movielens_dir=movielens_dir,
      baseline_done=_POPULARITY_BASELINE.value)), flush=True)


if __name__ == "__main__":
  cli.run(main, name="probes")
