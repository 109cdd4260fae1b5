"""Tests for the MovieLens preprocessors and the registered MovieLens Tasks.

Covers crs_tasks/preprocessors.py (MovieLens section), crs_tasks/movielens.py
and the `crs_movielens` TFDS builder on the bundled sample.
"""

import collections
import os

import pytest
import seqio
import tensorflow as tf

import crs_tasks  # pylint: disable=unused-import
from crs_tasks import features
from crs_tasks import metrics
from crs_tasks import movielens_data
from crs_tasks import movielens_reviews
from crs_tasks import movielens_sequences
from crs_tasks import movielens_tags
from crs_tasks import preprocessors
from crs_tasks.tfds_builders import movielens as builder_lib

_NAMES = {
    f"{prefix}_ml_{task}_v001"
    for prefix in ("crs", "crs_sample")
    for task in ("sequences", "tags", "tags_reversed", "reviews")
} | {  # ml-latest-small has no reviews.
    f"crs_small_ml_{task}_v001"
    for task in ("sequences", "tags", "tags_reversed")
}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A fresh TFDS data dir; the sample configs are prepared on first use."""
  path = str(tmp_path_factory.mktemp("tfds"))
  seqio.set_tfds_data_dir_override(path)
  yield path
  seqio.set_tfds_data_dir_override(None)


def _strings(ds, keys=("inputs", "targets")):
  return [
      tuple(ex[k].decode() for k in keys) for ex in ds.as_numpy_iterator()
  ]


# ============================== Preprocessors ===============================


def test_ml_sequence_to_text():
  ds = tf.data.Dataset.from_tensors({
      "user_id": tf.constant(3, tf.int64),
      "movies": ["Heat (1995)", "Léon: The Professional (1994)"],
      "target": "Alien (1979)",
  })
  seqio.test_utils.assert_dataset(
      preprocessors.ml_sequence_to_text(ds),
      {
          "inputs": "movielens sequence: @ heat (1995) @, "
                    "@ léon: the professional (1994) @",
          "targets": "@ alien (1979) @",
      },
  )
  seqio.test_utils.assert_dataset(
      preprocessors.ml_sequence_to_text(ds, lowercase=False, prefix="p: "),
      {
          "inputs": "p: @ Heat (1995) @, @ Léon: The Professional (1994) @",
          "targets": "@ Alien (1979) @",
      },
  )


def _tag_ds():
  return tf.data.Dataset.from_tensor_slices({
      "movie_id": tf.constant([1, 1], tf.int64),
      "title": ["The Matrix (1999)", "The Matrix (1999)"],
      "tags": tf.ragged.constant([["cyberpunk", "Sci-Fi"], ["Action"]]),
      "all_tags": tf.ragged.constant(
          [["cyberpunk", "Action", "Sci-Fi"]] * 2
      ),
      "subset_index": tf.constant([0, 1], tf.int32),
  }).map(lambda ex: {
      k: v.to_tensor() if isinstance(v, tf.RaggedTensor) else v
      for k, v in ex.items()
  })


def test_ml_tags_to_text():
  seqio.test_utils.assert_dataset(
      preprocessors.ml_tags_to_text(_tag_ds()),
      [
          {"inputs": "movielens tags: cyberpunk, sci-fi",
           "targets": "@ the matrix (1999) @"},
          {"inputs": "movielens tags: action",
           "targets": "@ the matrix (1999) @"},
      ],
  )


def test_ml_tags_reversed_keeps_first_subset():
  ds = preprocessors.ml_tags_reversed_to_text(
      preprocessors.ml_first_tag_subset(_tag_ds())
  )
  seqio.test_utils.assert_dataset(
      ds,
      [{"inputs": "movielens tags reversed: @ the matrix (1999) @",
        "targets": "cyberpunk, action, sci-fi"}],
  )


def test_ml_review_to_text():
  ds = tf.data.Dataset.from_tensor_slices({
      "title": ["Up (2009)", "Up (2009)"],
      "context": ["", "Sad."],
      "target": ["Sad.", "Then HAPPY."],
      "review_index": tf.constant([0, 0], tf.int32),
      "sentence_index": tf.constant([0, 1], tf.int32),
  })
  seqio.test_utils.assert_dataset(
      preprocessors.ml_review_to_text(ds),
      [
          {"inputs": "movielens review: @ up (2009) @", "targets": "sad."},
          {"inputs": "movielens review: @ up (2009) @ sad.",
           "targets": "then happy."},
      ],
  )


# ============================== Registrations ===============================


def test_registered_task_names():
  names = {n for n in seqio.TaskRegistry.names() if "_ml_" in n}
  assert names == _NAMES


@pytest.mark.parametrize(
    "name, config",
    [
        ("crs_ml_sequences_v001", "sequences_full"),
        ("crs_ml_tags_v001", "tags_full"),
        ("crs_ml_tags_reversed_v001", "tags_full"),
        ("crs_ml_reviews_v001", "reviews_full"),
        ("crs_sample_ml_sequences_v001", "sequences_sample"),
        ("crs_sample_ml_reviews_v001", "reviews_sample"),
    ],
)
def test_sources_are_pinned(name, config):
  task = seqio.get_mixture_or_task(name)
  assert task.source.tfds_dataset.name == f"crs_movielens/{config}:1.0.0"
  assert task.splits == ("train", "validation")
  assert any(
      isinstance(p, seqio.CacheDatasetPlaceholder) for p in task.preprocessors
  )


_RAW = {
    "sequences": {
        "user_id": 7,
        "movies": ["Heat (1995)", "Up (2009)"],
        "target": "The Matrix (1999)",
    },
    "tags": {
        "movie_id": 2571,
        "title": "The Matrix (1999)",
        "tags": ["cyberpunk", "Sci-Fi"],
        "all_tags": ["cyberpunk", "Sci-Fi", "Action"],
        "subset_index": 0,
    },
    "reviews": {
        "title": "Up (2009)",
        "context": "Sad start.",
        "target": "Happy end!",
        "review_index": 0,
        "sentence_index": 1,
    },
}


@pytest.mark.parametrize(
    "task, raw, inputs, targets",
    [
        ("ml_sequences", "sequences",
         "movielens sequence: @ heat (1995) @, @ up (2009) @",
         "@ the matrix (1999) @"),
        ("ml_tags", "tags", "movielens tags: cyberpunk, sci-fi",
         "@ the matrix (1999) @"),
        ("ml_tags_reversed", "tags",
         "movielens tags reversed: @ the matrix (1999) @",
         "cyberpunk, sci-fi, action"),
        ("ml_reviews", "reviews", "movielens review: @ up (2009) @ sad start.",
         "happy end!"),
    ],
)
@pytest.mark.parametrize("prefix", ["crs", "crs_sample"])
def test_registered_task_on_literal_example(prefix, task, raw, inputs,
                                            targets):
  name = f"{prefix}_{task}_v001"
  vocab = features.get_vocabulary()
  with seqio.test_utils.DataInjector(name, {"train": _RAW[raw]}):
    ds = seqio.get_mixture_or_task(name).get_dataset(
        {"inputs": 512, "targets": 128}, split="train", shuffle=False,
        use_cached=False,
    )
    (ex,) = list(ds.as_numpy_iterator())
  assert ex["inputs_pretokenized"].decode() == inputs
  assert ex["targets_pretokenized"].decode() == targets
  assert ex["inputs"].tolist() == vocab.encode(inputs) + [1]
  assert ex["targets"].tolist() == vocab.encode(targets) + [1]
  assert not any(k.startswith("decoder_") for k in ex)


# ======================== End to end on the sample ==========================


def _expected_sequences(split):
  sample = os.path.join(builder_lib.SAMPLE_DIR, "movielens")
  movies = movielens_data.load_movies(os.path.join(sample, "movies.csv"))
  splits = movielens_sequences.build_sequence_examples(
      movies, os.path.join(sample, "ratings.csv"), t=1e-2, seed=42
  )
  return [
      (
          "movielens sequence: "
          + ", ".join(f"@ {t} @" for t in ex["movies"]).lower(),
          f"@ {ex['target']} @".lower(),
      )
      for ex in splits[split]
  ]


def test_sample_sequences_end_to_end(tfds_dir):
  task = seqio.get_mixture_or_task("crs_sample_ml_sequences_v001")
  ds = task.get_dataset(
      None, split="validation", shuffle=False, use_cached=False
  )
  got = _strings(ds, ("inputs_pretokenized", "targets_pretokenized"))
  expected = _expected_sequences("validation")
  assert len(got) == len(expected) > 30
  assert collections.Counter(got) == collections.Counter(expected)
  # Every title in the sample is a ReDial-sample movie, never a bare id.
  assert all(i.startswith("movielens sequence: @ ") for i, _ in got)


def test_sample_counts(tfds_dir):
  del tfds_dir
  counts = {}
  for name in ("sequences", "tags", "tags_reversed", "reviews"):
    task = seqio.get_mixture_or_task(f"crs_sample_ml_{name}_v001")
    counts[name] = sum(
        1 for _ in task.get_dataset(None, split="train", shuffle=False,
                                    use_cached=False)
    )
  sample = os.path.join(builder_lib.SAMPLE_DIR, "movielens")
  movies = movielens_data.load_movies(os.path.join(sample, "movies.csv"))
  tags = movielens_tags.build_tag_examples(
      movies, movielens_tags.load_user_tags(os.path.join(sample, "tags.csv")),
      seed=42,
  )
  reviews = movielens_reviews.build_review_examples(
      os.path.join(builder_lib.SAMPLE_DIR, "reviews", "reviews.csv"), seed=42
  )
  assert counts == {
      "sequences": len(_expected_sequences("train")),
      "tags": len(tags["train"]),
      "tags_reversed": sum(
          1 for ex in tags["train"] if ex["subset_index"] == 0
      ),
      "reviews": len(reviews["train"]),
  }
  assert counts["sequences"] > 200


def test_titles_readable_by_extract_titles():
  ds = tf.data.Dataset.from_tensors({
      "movies": ["Heat (1995)", "Up (2009)", "(500) Days of Summer (2009)"],
      "target": "Alien (1979)",
  })
  (ex,) = list(preprocessors.ml_sequence_to_text(ds).as_numpy_iterator())
  assert metrics.extract_titles(ex["inputs"]) == [
      "heat (1995)", "up (2009)", "(500) days of summer (2009)"]
  assert metrics.extract_titles(ex["targets"]) == ["alien (1979)"]


@pytest.mark.parametrize("task,config", [
    ("sequences", "sequences_small"), ("tags", "tags_small"),
    ("tags_reversed", "tags_small")])
def test_small_tasks_read_ml_latest_small(task, config):
  small = seqio.get_mixture_or_task(f"crs_small_ml_{task}_v001")
  full = seqio.get_mixture_or_task(f"crs_ml_{task}_v001")
  assert small.source.tfds_dataset.name == f"crs_movielens/{config}:1.0.0"
  # Same preprocessing as the full task, only the data differs.
  assert [type(p).__name__ for p in small.preprocessors] == [
      type(p).__name__ for p in full.preprocessors]
