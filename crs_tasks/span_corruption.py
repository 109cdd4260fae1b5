"""T5's span-corruption objective as pure tf.data preprocessors.

Written to the definition of Raffel et al. (2020), Sec. 3.1.4, and T5's
`t5.data.preprocessors.span_corruption` (the pretraining Task of t5x's
pretraining gin), which does not install beside this project's pins: the
`t5` package (0.9.4, the latest on PyPI) requires `seqio-nightly` and
`tfds-nightly`, which would replace the pinned `seqio` and
`tensorflow-datasets`, plus `mesh-tensorflow[transformer]` and
`transformers`:

1. The tokens of all documents are concatenated and cut into chunks of
   `tokens_length` raw tokens (`random_spans_tokens_length`: the longest
   chunk whose corrupted `inputs`, EOS included, fit the inputs length).
2. Per chunk, `random_spans_noise_mask` marks `round(length *
   noise_density)` tokens as noise, in `round(num_noise / mean_span)` spans;
   the chunk alternates non-noise and noise spans, starting with non-noise,
   and the span lengths are uniform random segmentations.
3. `inputs` = the chunk with each noise span replaced by one sentinel;
   `targets` = each noise span preceded by its sentinel. Sentinels are the
   vocabulary's extra ids from the top: `<extra_id_0>` = `vocab_size - 1`,
   `<extra_id_1>` = `vocab_size - 2`, ... in span order, so inputs and
   targets share them and reassemble to the chunk.

For example, with tokens `[a b c d e f g h]`, the mask `[0 0 1 1 0 0 0 1]`
and sentinels s0 > s1: `inputs = [a b s0 e f g s1]`, `targets = [s0 c d s1
h]`.

Randomness is stateless (seeds from `seqio.map_over_dataset(num_seeds=2)`),
so a Task gives the same corruption for the same seed.
"""

from typing import Mapping

import seqio
import tensorflow as tf

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0


def _counts(length, noise_density, mean_noise_span_length):
  """(num_noise_tokens, num_noise_spans) of T5's definition (python ints)."""
  num_noise = int(round(length * noise_density))
  num_noise = min(max(num_noise, 1), length - 1)
  num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
  return num_noise, num_spans


def random_spans_tokens_length(
    inputs_length: int,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
) -> tuple[int, int]:
  """Raw chunk length whose corrupted inputs fit `inputs_length` (with EOS).

  A chunk of n tokens gives `n - num_noise + num_spans + 1` input tokens and
  `num_noise + num_spans + 1` target tokens (EOS included), as T5's
  `random_spans_helper`. E.g. inputs 128, density 0.15, span 3: n = 141
  (21 noise tokens in 7 spans: inputs 141 - 21 + 7 + 1 = 128, targets 29).

  Args:
    inputs_length: the Task's inputs length.
    noise_density: fraction of noise tokens.
    mean_noise_span_length: mean noise span length.

  Returns:
    `(tokens_length, targets_length)`.
  """
  if inputs_length < 3:
    raise ValueError(f"inputs_length must be >= 3, got {inputs_length}")

  def lengths(n):
    num_noise, num_spans = _counts(n, noise_density, mean_noise_span_length)
    return n - num_noise + num_spans + 1, num_noise + num_spans + 1

  n = 2
  while lengths(n + 1)[0] <= inputs_length:
    n += 1
  return n, lengths(n)[1]


def _random_segmentation(num_items, num_segments, seed):
  """Random partition of `num_items` into `num_segments` non-empty parts."""
  first_in_segment = tf.pad(
      seqio.stateless_shuffle(
          tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32), seed
      ),
      [[1, 0]],
  )
  segment_id = tf.cumsum(first_in_segment)
  return tf.math.segment_sum(tf.ones_like(segment_id), segment_id)


def random_spans_noise_mask(
    length,
    noise_density: float,
    seeds,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
) -> tf.Tensor:
  """T5's noise mask: alternating non-noise / noise spans, noise second.

  Args:
    length: number of tokens (a scalar int32 tensor or int).
    noise_density: fraction of noise tokens; `round(length * density)`
      tokens, at least 1 and at most `length - 1`.
    seeds: a [2, 2] int32 tensor of stateless seeds.
    mean_noise_span_length: `round(num_noise / mean)` spans (at least 1).

  Returns:
    A bool [length] mask, True on noise.
  """
  orig_length = length
  length = tf.maximum(length, 2)
  num_noise = tf.cast(
      tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32
  )
  num_noise = tf.minimum(tf.maximum(num_noise, 1), length - 1)
  num_spans = tf.cast(
      tf.round(tf.cast(num_noise, tf.float32) / mean_noise_span_length),
      tf.int32,
  )
  num_spans = tf.maximum(num_spans, 1)
  noise_lengths = _random_segmentation(num_noise, num_spans, seeds[0])
  nonnoise_lengths = _random_segmentation(
      length - num_noise, num_spans, seeds[1]
  )
  interleaved = tf.reshape(
      tf.stack([nonnoise_lengths, noise_lengths], axis=1), [num_spans * 2]
  )
  span_starts = tf.cumsum(interleaved)[:-1]
  indicator = tf.math.unsorted_segment_sum(
      tf.ones_like(span_starts), span_starts, length
  )
  is_noise = tf.equal(tf.cumsum(indicator) % 2, 1)
  return is_noise[:orig_length]


def noise_span_to_unique_sentinel(
    tokens: tf.Tensor, noise_mask: tf.Tensor, vocab_size: int
) -> tf.Tensor:
  """Replaces each noise span by one sentinel (`vocab_size - 1 - i`).

  `[a b c d e f g h]`, mask `[0 0 1 1 0 0 0 1]` -> `[a b s0 e f g s1]`.

  Args:
    tokens: int32 [n].
    noise_mask: bool [n].
    vocab_size: the vocabulary's size (extra ids included).

  Returns:
    The corrupted int32 tokens.
  """
  prev_noise = tf.pad(noise_mask[:-1], [[1, 0]])
  first_noise = tf.logical_and(noise_mask, tf.logical_not(prev_noise))
  later_noise = tf.logical_and(noise_mask, prev_noise)
  sentinel = vocab_size - tf.cumsum(tf.cast(first_noise, tokens.dtype))
  tokens = tf.where(first_noise, sentinel, tokens)
  return tf.boolean_mask(tokens, tf.logical_not(later_noise))


def nonnoise_span_to_unique_sentinel(
    tokens: tf.Tensor, noise_mask: tf.Tensor, vocab_size: int
) -> tf.Tensor:
  """The targets: each non-noise span replaced by a sentinel.

  Same mask as above -> `[s0 c d s1 h]`: each noise span after the
  sentinel that replaced it in the inputs (T5's targets).

  Args:
    tokens: int32 [n].
    noise_mask: bool [n].
    vocab_size: the vocabulary's size.

  Returns:
    The int32 target tokens.
  """
  return noise_span_to_unique_sentinel(
      tokens, tf.logical_not(noise_mask), vocab_size
  )


def concat_and_split(
    dataset: tf.data.Dataset, tokens_length: int, feature: str = "targets"
) -> tf.data.Dataset:
  """Concatenates `feature` over examples and cuts chunks of `tokens_length`.

  T5's `reduce_concat_tokens` + `split_tokens`, without its random chunk
  selection (documents here are short). The last chunk may be shorter.

  Args:
    dataset: examples with a 1-D int32 `feature`.
    tokens_length: chunk length.
    feature: the token feature.

  Returns:
    Examples `{feature: int32 [<= tokens_length]}`.
  """
  tokens = dataset.map(
      lambda ex: ex[feature], num_parallel_calls=tf.data.AUTOTUNE
  ).unbatch()
  return tokens.batch(tokens_length).map(lambda t: {feature: t})


def span_corruption(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
) -> tf.data.Dataset:
  """T5's span corruption over tokenized `targets` (whole documents).

  Put after `seqio.preprocessors.tokenize` (text in `targets`) and before
  `append_eos_after_trim`; chunk length from the inputs length.

  Args:
    dataset: `{"targets": int32 [n]}` documents.
    sequence_length: `{"inputs": L, ...}`; chunks fit L with EOS.
    output_features: the Task's (the `targets` vocabulary sets sentinels).
    noise_density: fraction of noise tokens (T5: 0.15).
    mean_noise_span_length: mean span length (T5: 3).

  Returns:
    `{"inputs", "targets"}` int32 examples, one per chunk.
  """
  tokens_length, _ = random_spans_tokens_length(
      sequence_length["inputs"], noise_density, mean_noise_span_length
  )
  vocab_size = output_features["targets"].vocabulary.vocab_size
  chunks = concat_and_split(dataset, tokens_length)
  chunks = chunks.filter(lambda ex: tf.size(ex["targets"]) >= 2)

  @seqio.map_over_dataset(num_seeds=2)
  def corrupt(ex, seeds):
    tokens = ex["targets"]
    mask = random_spans_noise_mask(
        tf.size(tokens), noise_density, seeds, mean_noise_span_length
    )
    return {
        "inputs": noise_span_to_unique_sentinel(tokens, mask, vocab_size),
        "targets": nonnoise_span_to_unique_sentinel(tokens, mask, vocab_size),
    }

  return corrupt(chunks)
