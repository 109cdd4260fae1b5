"""What the model sees: Task or text -> examples -> model features -> batches.

Every path from text to the model starts here, so generation, target
scoring, ranking, probes and chat feed the model the same tokens:

  task_examples(task, split, lengths)  the Task's own pipeline (tokenized and
                                       trimmed as in training: ReDial keeps the
                                       prefix and the most recent tokens),
                                       as python dicts with every feature
  tokenize_texts(vocab, texts, length) texts that are no Task's (probe pairs,
                                       candidate replies, chat): seqio's
                                       tokenize + append_eos_after_trim
  model_features(examples, lengths,    the model's FEATURE_CONVERTER_CLS
                 converter_cls)        (seqio EncDecFeatureConverter) ->
                                       `encoder_input_tokens`, ... arrays
  iter_batches(features, batch_size)   fixed-shape batches of those rows

`train.inference` runs the model over them.
"""

from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import seqio
import tensorflow as tf

from crs_tasks import postprocessors

Example = dict[str, Any]
Batch = dict[str, np.ndarray]


def task_examples(
    task: Any,
    *,
    split: str,
    task_feature_lengths: Mapping[str, int],
    num_examples: Optional[int] = None,
    use_cached: bool = False,
) -> list[Example]:
  """The first `num_examples` examples of a Task split, in order.

  The examples come out of the Task's own preprocessors with
  `task_feature_lengths`, so their `inputs`/`targets` token ids are exactly
  what training and every evaluation feed the model.

  Args:
    task: a `seqio.Task` or a registered Task name.
    split: e.g. `"test"`.
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    num_examples: how many; all when None.
    use_cached: read the seqio cache.

  Returns:
    Dicts of python values: token ids as lists of int, strings as str,
    string tensors as lists of str (`inputs_pretokenized`, metadata, ...).
  """
  if isinstance(task, str):
    task = seqio.get_mixture_or_task(task)
  ds = task.get_dataset(sequence_length=dict(task_feature_lengths),
                        split=split, shuffle=False, num_epochs=1,
                        use_cached=use_cached)
  if num_examples is not None:
    ds = ds.take(num_examples)
  return [{k: postprocessors.to_python(v) for k, v in ex.items()}
          for ex in ds.as_numpy_iterator()]


def tokenize_texts(vocabulary: Any, texts: Sequence[str],
                   length: int) -> list[list[int]]:
  """Token ids + EOS, the first `length - 1` pieces kept (seqio's
  `tokenize` + `append_eos_after_trim`, for texts that are no Task's)."""
  return [list(vocabulary.encode(t))[: length - 1] + [vocabulary.eos_id]
          for t in texts]


def texts_to_examples(input_vocabulary: Any, output_vocabulary: Any,
                      inputs: Sequence[str], targets: Sequence[str],
                      task_feature_lengths: Mapping[str, int]
                     ) -> list[Example]:
  """`{"inputs": ids, "targets": ids}` examples of text pairs."""
  if len(inputs) != len(targets):
    raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
  enc = tokenize_texts(input_vocabulary, inputs,
                       task_feature_lengths["inputs"])
  dec = tokenize_texts(output_vocabulary, targets,
                       task_feature_lengths["targets"])
  return [{"inputs": i, "targets": t} for i, t in zip(enc, dec)]


def feature_converter_cls(model: Any) -> type[seqio.FeatureConverter]:
  """The model's `FEATURE_CONVERTER_CLS` (seqio's EncDec one by default)."""
  return getattr(model, "FEATURE_CONVERTER_CLS", seqio.EncDecFeatureConverter)


def model_features(
    examples: Sequence[Mapping[str, Any]],
    task_feature_lengths: Mapping[str, int],
    converter_cls: type[seqio.FeatureConverter] = seqio.EncDecFeatureConverter,
) -> Batch:
  """Model features of examples, through the model's feature converter.

  Args:
    examples: each with `inputs` and (optionally, else empty) `targets`
      token ids, at most the task feature lengths long (as `task_examples`
      and `tokenize_texts` make them).
    task_feature_lengths: `{"inputs": ..., "targets": ...}`.
    converter_cls: the model's `FEATURE_CONVERTER_CLS`.

  Returns:
    `{"encoder_input_tokens": int32 [N, Lin], "decoder_input_tokens": ...,
    "decoder_target_tokens": ..., "decoder_loss_weights": ...}` (unpacked,
    one row per example, in order).
  """
  lengths = dict(task_feature_lengths)

  def rows():
    for ex in examples:
      yield {"inputs": np.asarray(ex["inputs"], np.int32),
             "targets": np.asarray(ex.get("targets", []), np.int32)}

  spec = tf.TensorSpec([None], tf.int32)
  ds = tf.data.Dataset.from_generator(
      rows, output_signature={"inputs": spec, "targets": spec})
  ds = converter_cls(pack=False)(ds, lengths)
  out = {}
  for batch in ds.batch(1024).as_numpy_iterator():
    for key, value in batch.items():
      out.setdefault(key, []).append(value)
  if not out:
    raise ValueError("model_features: no examples")
  return {k: np.concatenate(v) for k, v in out.items()}


def iter_batches(features: Batch, batch_size: int
                ) -> Iterator[tuple[int, int, Batch]]:
  """`(start, end, batch)` over rows `[start, end)` of `features`.

  A last, smaller batch is filled with copies of its last row, so every
  call has one shape (nothing recompiles); use only rows `:end - start`.
  """
  n = len(next(iter(features.values())))
  for start in range(0, n, batch_size):
    end = min(start + batch_size, n)
    batch = {}
    for key, value in features.items():
      rows = value[start:end]
      if end - start < batch_size:
        rows = np.concatenate(
            [rows, np.repeat(rows[-1:], batch_size - (end - start), 0)])
      batch[key] = rows
    yield start, end, batch
