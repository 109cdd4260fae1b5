"""Training eval: token-weighted loss and accuracy per task, during training.

`run_training_eval` runs the compiled eval step over each task's eval split
(zero-padding the last batch, so one compiled shape serves all) and combines
batches the way the metrics combine: additive ones (`summaries.is_additive`:
losses, counts) are summed and divided by the target tokens, the others are
means weighted by the target tokens. `write_eval_metrics` writes them to
`MODEL_DIR/training_eval/<task>`, as t5x does. Inference-based metrics
(recall, BLEU) are `eval/`'s, not this module's.
"""

from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np
import tensorflow as tf

from train import distributed
from train import input_pipeline
from train import summaries

Array = jax.Array
PyTree = Any


def run_training_eval(
    eval_step: Callable[..., dict[str, Array]],
    params: PyTree,
    datasets: Mapping[str, tf.data.Dataset],
    *,
    batch_size: int,
    data_sharding: jax.sharding.Sharding,
    max_batches: Optional[int] = None,
    layout: Optional[distributed.DataLayout] = None,
) -> dict[str, float]:
  """Token-weighted eval metrics per task, named `training_eval/<task>/...`.

  With several processes each reads its own shard of every task (`datasets`)
  and builds its rows of each global batch; they step together until every
  process has run out, the ones done early feeding all-padding rows, which
  count for nothing.

  Args:
    eval_step: compiled `eval_step(params, batch)`.
    params: model params.
    datasets: `{task: batched dataset}` from `get_eval_datasets` (this
      process's shard).
    batch_size: this process's rows per compiled batch (the last batch is
      zero-padded); the global batch when there is one process.
    data_sharding: sharding of batches.
    max_batches: per-task cap (None: the whole split).
    layout: the processes' data layout (None: one process).

  Returns:
    `{"training_eval/<task>/loss_per_target_token": ..., ".../accuracy":
    ..., ".../num_target_tokens": ...}`; additive metrics are divided by the
    target tokens, means are weighted by them.
  """
  if layout is None:
    layout = distributed.DataLayout(batch_size, 1, (0,))
  out = {}
  for task, ds in datasets.items():
    if max_batches is not None:
      ds = ds.take(max_batches)
    totals: dict[str, float] = {}
    for batch in _lockstep_batches(ds, batch_size):
      batch = distributed.global_batch(batch, data_sharding, layout)
      metrics = summaries.host_metrics(eval_step(params, batch))
      for name, value in metrics.items():
        # Means are weighted by the batch's tokens (padded rows have none).
        weight = (1.0 if summaries.is_additive(name)
                  else metrics["num_target_tokens"])
        totals[name] = totals.get(name, 0.0) + value * weight
    tokens = totals.get("num_target_tokens", 0.0)
    if not tokens:
      continue
    prefix = f"training_eval/{task}/"
    for name, value in totals.items():
      if name.startswith("num_"):
        out[prefix + name] = value
      elif summaries.is_additive(name):
        out[prefix + name + "_per_target_token"] = value / tokens
      elif name != "loss_per_target_token":
        out[prefix + name] = value / tokens
  return out


def _lockstep_batches(ds: tf.data.Dataset, batch_size: int):
  """`ds`'s batches padded to `batch_size` rows, while any process has one.

  A process whose shard ran out yields all-padding batches until every
  process has (one small collective per batch when there are several).
  """
  it = ds.as_numpy_iterator()
  several = jax.process_count() > 1
  while True:
    batch = next(it, None)
    if several and not any(distributed.allgather_objects(batch is not None)):
      return
    if batch is None:
      if not several:
        return
      batch = {k: np.zeros((0, *spec.shape[1:]), spec.dtype.as_numpy_dtype)
               for k, spec in ds.element_spec.items()}
    yield input_pipeline.pad_batch(batch, batch_size)


def write_eval_metrics(writers: dict[str, summaries.MetricWriter],
                       model_dir: str, step: int,
                       metrics: Mapping[str, float]) -> None:
  """Writes `run_training_eval` metrics, one TensorBoard run per task.

  Args:
    writers: `{namespace: writer}`; a `training_eval/<task>` writer is added
      on first use.
    model_dir: MODEL_DIR.
    step: the train step.
    metrics: `{"training_eval/<task>/<metric>": value}`.
  """
  by_task: dict[str, dict[str, float]] = {}
  for name, value in metrics.items():
    _, task, metric = name.split("/", 2)
    by_task.setdefault(task, {})[metric] = value
  for task, scalars in by_task.items():
    key = f"training_eval/{task}"
    if key not in writers:
      writers[key] = summaries.MetricWriter(model_dir, key)
    writers[key].write_scalars(step, scalars)
