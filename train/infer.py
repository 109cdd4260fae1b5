r"""The infer command: a Task's predictions as rows with metadata, in JSONL.

  python -m train.infer --gin_file=runs/infer.gin \
    --gin.CHECKPOINT_PATH="'/tmp/t5cr'" \
    --gin.MIXTURE_OR_TASK_NAME="'crs_sample_redial_v002'" \
    --gin.INFER_OUTPUT_DIR="'/tmp/t5cr/infer'"

The inference library is two modules, one job each: `train.model_inputs`
(Task or text -> examples -> model features -> batches, the one path from
text to the model) and `train.inference` (generate, score, the candidate and
pair scorers). Here: `predict_examples` (a Task split -> rows),
`write_jsonl`, `infer` (the command, one JSONL file per
task) and `show_predictions` (a few decoded examples after training).

Callers of the library import `train.model_inputs` and `train.inference`
themselves (this module is a command).
"""

import importlib
import os
from typing import Any, Mapping, Optional, Sequence

from absl import app
from absl import logging

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow and JAX load, so their start-up logs reach the
# command's log file (a no-op unless this module is the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

import gin

from crs_runtime import gin_flags
from crs_tasks import probe_io
from train import checkpointing
from train import inference
from train import input_pipeline
from train import model_inputs

PyTree = Any


# ============================== Rows and JSONL ==============================


def predict_examples(
    model: Any,
    params: PyTree,
    *,
    task_name: str,
    split: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int = 8,
    decode_method: str = "greedy",
    num_beams: int = 4,
    temperature: float = 1.0,
    max_decode_length: Optional[int] = None,
    max_examples: Optional[int] = None,
    seed: int = 0,
    module: Optional[str] = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
  """Decodes `split` of a Task and returns one row per example.

  Args:
    model: an `EncoderDecoderModel`.
    params: its params.
    task_name: a registered seqio Task (for a Mixture, call once per task).
    split: split to decode, in order.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    batch_size: examples per decoding call.
    decode_method: "greedy", "beam" or "sample".
    num_beams: beams for "beam".
    temperature: temperature for "sample".
    max_decode_length: decoded tokens (default: the targets length).
    max_examples: decode only the first examples.
    seed: sampling seed (batch i uses `fold_in(seed, i)`).
    module: module to import first (registers the task).
    progress: show a progress bar.

  Returns:
    Rows with `inputs`, `targets`, `prediction` and the task's other
    features (token-id features are left out).

  Raises:
    ValueError: an unknown `decode_method`.
  """
  if module:
    importlib.import_module(module)
  decode = inference.DecodeConfig(decode_method, num_beams, temperature,
                                  max_decode_length, seed)
  examples = model_inputs.task_examples(
      task_name, split=split, task_feature_lengths=task_feature_lengths,
      num_examples=max_examples)
  predictions = inference.generate(
      model, params, examples, task_feature_lengths=task_feature_lengths,
      decode=decode, batch_size=batch_size, desc=task_name,
      progress=progress)
  return [inference.prediction_row(ex, p)
          for ex, p in zip(examples, predictions)]


def write_jsonl(rows: Sequence[Mapping[str, Any]], path: str) -> str:
  """Writes rows as JSON lines, atomically (`crs_tasks.probe_io.write_jsonl`,
  the project's one JSONL writer), and returns the path."""
  return probe_io.write_jsonl(path, rows)


def infer(
    *,
    checkpoint_path: str,
    mixture_or_task_name: str,
    output_dir: str,
    task_feature_lengths: Mapping[str, int],
    split: str = "test",
    step: Optional[int] = None,
    batch_size: int = 8,
    decode_method: str = "greedy",
    num_beams: int = 4,
    temperature: float = 1.0,
    max_examples: Optional[int] = None,
    seed: int = 0,
    module: Optional[str] = "crs_tasks",
) -> list[str]:
  """Loads MODEL_DIR `checkpoint_path` and writes one JSONL file per task.

  Args:
    checkpoint_path: a model directory written by training.
    mixture_or_task_name: a Task, or a Mixture (each sub-task with `split`).
    output_dir: where `<task>-<split>.jsonl` files go.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    split: split to decode.
    step: checkpoint step (None: latest).
    batch_size: examples per decoding call.
    decode_method: "greedy", "beam" or "sample".
    num_beams: beams for "beam".
    temperature: temperature for "sample".
    max_examples: per task, decode only the first examples.
    seed: sampling seed.
    module: module to import first (registers the tasks).

  Returns:
    The written paths.
  """
  model, params, step = checkpointing.load_model(checkpoint_path, step=step)
  provider = input_pipeline.get_provider(input_pipeline.DatasetConfig(
      mixture_or_task_name, task_feature_lengths, split, batch_size,
      module=module))
  paths = []
  for task in getattr(provider, "tasks", [provider]):
    if split not in task.splits:
      logging.warning("task %s has no split %r; skipped", task.name, split)
      continue
    rows = predict_examples(
        model, params, task_name=task.name, split=split,
        task_feature_lengths=task_feature_lengths, batch_size=batch_size,
        decode_method=decode_method, num_beams=num_beams,
        temperature=temperature, max_examples=max_examples, seed=seed)
    path = os.path.join(output_dir, f"{task.name}-{split}.jsonl")
    paths.append(write_jsonl(rows, path))
    logging.info("step %d: wrote %d predictions to %s", step, len(rows), path)
    print(f"wrote {len(rows)} predictions to {path}", flush=True)
  return paths


def format_predictions(
    rows: Sequence[Mapping[str, Any]], max_input_chars: int = 160
) -> str:
  """Rows from `predict_examples` as text: input tail, target, prediction."""
  lines = []
  for i, row in enumerate(rows):
    text = row.get("inputs") or ""
    tail = text if len(text) <= max_input_chars else (
        "..." + text[-max_input_chars:])
    lines += [f"[{i}] input:      {tail}",
              f"    target:     {row.get('targets')}",
              f"    prediction: {row.get('prediction')}"]
  return "\n".join(lines)


def show_predictions(
    model: Any,
    params: PyTree,
    *,
    mixture_or_task_name: Optional[str] = None,
    split: str = "test",
    num_examples: int = 3,
    task_feature_lengths: Optional[Mapping[str, int]] = None,
    decode_method: str = "greedy",
    module: Optional[str] = "crs_tasks",
) -> list[dict[str, Any]]:
  """Decodes and prints the first examples of a task (after training).

  Args:
    model: the trained model.
    params: its params.
    mixture_or_task_name: a Task; None (or num_examples 0) does nothing.
    split: split to read.
    num_examples: examples to decode.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    decode_method: "greedy", "beam" or "sample".
    module: module to import first (registers the task).

  Returns:
    The decoded rows.
  """
  if not mixture_or_task_name or not num_examples:
    return []
  if task_feature_lengths is None:
    raise ValueError("show_predictions needs task_feature_lengths")
  rows = predict_examples(
      model, params, task_name=mixture_or_task_name, split=split,
      task_feature_lengths=task_feature_lengths,
      batch_size=min(num_examples, 8), decode_method=decode_method,
      max_examples=num_examples, module=module, progress=False)
  print(f"Predictions on {mixture_or_task_name}/{split}:")
  print(format_predictions(rows), flush=True)
  return rows


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Import the library copy of this module: under `python -m train.infer`
  # this file is `__main__`, while gin files bind `train.infer.infer`.
  from train import infer as infer_lib  # pylint: disable=g-import-not-at-top

  infer_using_gin = gin.configurable(infer_lib.infer)
  gin_flags.parse_from_flags()
  try:
    output_dir = gin.query_parameter("%INFER_OUTPUT_DIR")
  except ValueError:
    output_dir = None
  log = cli.log_to(output_dir if isinstance(output_dir, str) else None)
  paths = infer_using_gin()
  if paths:
    print(f"Outputs: {', '.join(paths)}" + (f"; log: {log}" if log else ""))
    print(cli.next_command(f"head -n 1 {paths[0]}"), flush=True)


if __name__ == "__main__":
  cli.run(main, name="infer", flags_parser=gin_flags.flags_parser)
