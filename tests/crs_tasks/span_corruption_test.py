"""Tests of T5's span corruption (crs_tasks/span_corruption.py), against
hand-computed examples of T5's definition."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from crs_tasks import span_corruption as sc

VOCAB_SIZE = 100  # Sentinels 99, 98, ...


def test_tokens_length_fits_the_inputs_length():
  # n = 141: 21 noise tokens (round(21.15)) in 7 spans: inputs 141 - 21 + 7
  # + 1 = 128, targets 21 + 7 + 1 = 29. n = 142 would give 129 inputs.
  assert sc.random_spans_tokens_length(128) == (141, 29)
  # n = 10: 2 noise tokens (round(1.5) = 2) in 1 span: inputs 10 - 2 + 1 +
  # 1 = 10, targets 2 + 1 + 1 = 4; n = 11 gives 2 noise, 11 inputs.
  assert sc.random_spans_tokens_length(10) == (10, 4)
  with pytest.raises(ValueError, match="inputs_length"):
    sc.random_spans_tokens_length(2)


def test_sentinels_replace_spans_in_order():
  tokens = tf.constant([11, 12, 13, 14, 15, 16, 17, 18])
  mask = tf.constant([0, 0, 1, 1, 0, 0, 0, 1]) > 0
  inputs = sc.noise_span_to_unique_sentinel(tokens, mask, VOCAB_SIZE)
  targets = sc.nonnoise_span_to_unique_sentinel(tokens, mask, VOCAB_SIZE)
  assert inputs.numpy().tolist() == [11, 12, 99, 15, 16, 17, 98]
  assert targets.numpy().tolist() == [99, 13, 14, 98, 18]


def _spans(mask):
  """Lengths of the runs of equal values, with the value of each run."""
  runs, start = [], 0
  for i in range(1, len(mask) + 1):
    if i == len(mask) or mask[i] != mask[start]:
      runs.append((bool(mask[start]), i - start))
      start = i
  return runs


@pytest.mark.parametrize("length", [10, 37, 141])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_noise_mask_counts_and_alternation(length, seed):
  seeds = tf.constant([[seed, 1], [seed, 2]])
  mask = sc.random_spans_noise_mask(length, 0.15, seeds, 3.0).numpy()
  num_noise = min(max(int(round(length * 0.15)), 1), length - 1)
  num_spans = max(int(round(num_noise / 3.0)), 1)
  assert mask.shape == (length,)
  assert mask.sum() == num_noise
  runs = _spans(mask)
  assert runs[0][0] is False  # Starts with non-noise, as T5.
  assert runs[-1][0] is True  # ... and ends with a noise span.
  assert sum(1 for noise, _ in runs if noise) == num_spans
  again = sc.random_spans_noise_mask(length, 0.15, seeds, 3.0).numpy()
  np.testing.assert_array_equal(mask, again)  # Stateless: same seeds.


def _reassemble(inputs, targets):
  """Puts each target span back in place of its sentinel."""
  spans, current = {}, None
  for t in targets:
    if t >= VOCAB_SIZE - 50:
      current = t
      spans[current] = []
    else:
      spans[current].append(t)
  out = []
  for t in inputs:
    out.extend(spans[t] if t in spans else [t])
  return out


def test_span_corruption_chunks_and_reassembles():
  vocab = seqio.PassThroughVocabulary(size=VOCAB_SIZE)
  features = {"inputs": seqio.Feature(vocab), "targets": seqio.Feature(vocab)}
  docs = [list(range(1, 31)), list(range(31, 46))]  # 45 tokens.
  ds = tf.data.Dataset.from_generator(
      lambda: ({"targets": d} for d in docs),
      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  # inputs 10 -> chunks of 10 raw tokens: 45 tokens -> 4 full + 1 of 5.
  out = list(sc.span_corruption(ds, {"inputs": 10, "targets": 4},
                                features).as_numpy_iterator())
  assert len(out) == 5
  restored = []
  for ex in out:
    assert len(ex["inputs"]) <= 9 and len(ex["targets"]) <= 3 + 1
    assert max(ex["inputs"]) == 99 or len(ex["inputs"]) < 9
    restored += _reassemble(ex["inputs"].tolist(), ex["targets"].tolist())
  assert restored == list(range(1, 46))  # Concatenated across documents.
