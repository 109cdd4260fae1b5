"""Metric writers: TensorBoard event files and a progress line for people.

Metric names follow t5x: one TensorBoard run per namespace
(`MODEL_DIR/train`, `MODEL_DIR/training_eval/<task>`), scalars such as
`loss`, `learning_rate`, `timing/seqs_per_second`,
`timing/tokens_per_second`, `cross_ent_loss`, `accuracy`. To log somewhere
else (e.g. a notebook), pass any object with `write_scalars(step, scalars)`
and `close()` where a `MetricWriter` is expected.

Metric values: `host_metrics` turns a step's device metrics into floats (plus
`loss_per_target_token`); `is_additive` says which of them add up over
examples (losses and `num_*` counts) and which are per-batch means, which is
how microbatches and eval batches are combined. `Throughput` and
`log_progress` make the train loop's progress lines.
"""

import datetime
import os
import time
from typing import Mapping, Optional

import jax
import tensorflow as tf

Array = jax.Array

# Model metrics that add up over examples (t5x: sums over target tokens);
# all others (accuracy, nonpadding_fraction, ...) are per-batch means.
ADDITIVE_METRICS = ("loss", "z_loss", "cross_ent_loss")


def is_additive(name: str) -> bool:
  """True for metrics that sum over examples (losses and `num_*` counts)."""
  return name in ADDITIVE_METRICS or name.startswith("num_")


def host_metrics(metrics: Mapping[str, Array]) -> dict[str, float]:
  """Device metrics -> python floats, plus per-token loss."""
  out = {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}
  tokens = out.get("num_target_tokens", 0.0)
  if tokens:
    out["loss_per_target_token"] = out["loss"] / tokens
  return out


class MetricWriter:
  """Writes scalars to TensorBoard under MODEL_DIR/<namespace>."""

  def __init__(self, model_dir: str, namespace: str):
    self.namespace = namespace
    self.logdir = os.path.join(model_dir, namespace)
    self._writer = tf.summary.create_file_writer(self.logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    with self._writer.as_default():
      for name, value in scalars.items():
        tf.summary.scalar(name, float(value), step=int(step))
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def read_scalars(logdir: str) -> dict[str, dict[int, float]]:
  """Reads every scalar in the event files under `logdir` (for tests/tools).

  Args:
    logdir: a directory written by `MetricWriter`.

  Returns:
    `{tag: {step: value}}`.
  """
  out: dict[str, dict[int, float]] = {}
  for name in sorted(tf.io.gfile.listdir(logdir)):
    if "tfevents" not in name:
      continue
    path = os.path.join(logdir, name)
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        number = float(tf.make_ndarray(value.tensor)) if value.HasField(
            "tensor") else value.simple_value
        out.setdefault(value.tag, {})[int(event.step)] = number
  return out


def format_duration(seconds: float) -> str:
  """12345.6 -> '3:25:45' (hours:minutes:seconds)."""
  return str(datetime.timedelta(seconds=int(round(max(seconds, 0.0)))))


def progress_line(
    *,
    step: int,
    total_steps: int,
    loss: float,
    tokens_per_second: float,
    seconds_per_step: float,
    learning_rate: Optional[float] = None,
) -> str:
  """One human-readable progress line.

  Example: `step 120/1000 loss 3.2140 lr 3.0e-03 tokens/s 12,345
  ETA 0:01:23`.

  Args:
    step: steps done.
    total_steps: steps planned.
    loss: latest (or averaged) training loss.
    tokens_per_second: non-padding target+input tokens per second.
    seconds_per_step: recent seconds per step, for the ETA.
    learning_rate: current learning rate, if known.

  Returns:
    The line.
  """
  parts = [f"step {step}/{total_steps}", f"loss {loss:.4f}"]
  if learning_rate is not None:
    parts.append(f"lr {learning_rate:.1e}")
  parts.append(f"tokens/s {tokens_per_second:,.0f}")
  eta = (total_steps - step) * seconds_per_step
  parts.append(f"ETA {format_duration(eta)}")
  return " ".join(parts)


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 60) -> str:
  """A text curve of `values` (bucket means), e.g. '█▆▄▃▂▁'."""
  if not values:
    return ""
  width = max(1, min(width, len(values)))
  buckets = []
  for i in range(width):
    lo = i * len(values) // width
    hi = max(lo + 1, (i + 1) * len(values) // width)
    chunk = values[lo:hi]
    buckets.append(sum(chunk) / len(chunk))
  low, high = min(buckets), max(buckets)
  span = (high - low) or 1.0
  return "".join(
      _SPARKS[int((b - low) / span * (len(_SPARKS) - 1))] for b in buckets
  )


def loss_curve_summary(losses: list[float], first_step: int = 1) -> str:
  """First/last/min loss and a sparkline of a training run's losses.

  Args:
    losses: the loss of each step run, in order.
    first_step: the global step of `losses[0]` (after a resume from step
      k, k + 1), so the minimum is reported at its global step.

  Returns:
    Two lines, e.g. `loss first 9.1000  last 8.2000  min 8.1000 (step 146)
    over 50 steps` and the sparkline.
  """
  if not losses:
    return "no training steps were run"
  best = min(range(len(losses)), key=losses.__getitem__)
  return (
      f"loss first {losses[0]:.4f}  last {losses[-1]:.4f}  "
      f"min {losses[best]:.4f} (step {first_step + best})  "
      f"over {len(losses)} steps\n"
      f"  {sparkline(losses)}"
  )


# ---------------------------------------------------------------------------
# Progress of the train loop.
# ---------------------------------------------------------------------------


class Throughput:
  """Recent throughput for progress lines (tokens/s, seconds/step)."""

  def __init__(self, step: int):
    self.start = time.perf_counter()
    self.last_time, self.last_step = self.start, step
    self.tokens = self.examples = 0.0

  def add(self, metrics: Mapping[str, float]) -> None:
    self.tokens += metrics.get("num_target_tokens", 0.0) + metrics.get(
        "num_input_tokens", 0.0)
    self.examples += metrics.get("num_examples", 0.0)

  def lap(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    seconds = max(now - self.last_time, 1e-9)
    steps = max(step - self.last_step, 1)
    out = {
        "timing/seconds_per_step": seconds / steps,
        "timing/tokens_per_second": self.tokens / seconds,
        "timing/seqs_per_second": self.examples / seconds,
    }
    self.last_time, self.last_step = now, step
    self.tokens = self.examples = 0.0
    return out


def log_progress(writer: MetricWriter, step: int, total_steps: int,
                 metrics: Mapping[str, float], timer: Throughput) -> None:
  """Writes the train scalars and prints the progress line of `step`."""
  timing = timer.lap(step)
  scalars = {k: v for k, v in metrics.items() if not k.startswith("num_")}
  scalars.update(timing)
  writer.write_scalars(step, scalars)
  line = progress_line(
      step=step,
      total_steps=total_steps,
      loss=metrics.get("loss_per_target_token", metrics["loss"]),
      tokens_per_second=timing["timing/tokens_per_second"],
      seconds_per_step=timing["timing/seconds_per_step"],
      learning_rate=metrics.get("learning_rate"),
  )
  print(line, flush=True)
