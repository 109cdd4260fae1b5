"""Tests for crs_tasks/mixtures.py: registered names and normalized rates."""

import pytest
import seqio
import tensorflow_datasets as tfds

import crs_tasks  # pylint: disable=unused-import

_EQUAL = {
    "redial_only": {"redial": 1.0},
    "redial_sequences": {"redial": 0.5, "ml_sequences": 0.5},
    "redial_tags": {"redial": 0.5, "ml_tags": 0.25, "ml_tags_reversed": 0.25},
    "redial_reviews": {"redial": 0.5, "ml_reviews": 0.5},
    "t5cr_no_reviews": {"redial": 1 / 3, "ml_sequences": 1 / 3,
                        "ml_tags": 1 / 6, "ml_tags_reversed": 1 / 6},
    "t5cr": {"redial": 0.25, "ml_sequences": 0.25, "ml_tags": 0.125,
             "ml_tags_reversed": 0.125, "ml_reviews": 0.25},
}


def _normalized(mixture):
  rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  total = sum(rates.values())
  return {k: v / total for k, v in rates.items()}


def test_registered_mixture_names():
  expected = set()
  for version in ("v001", "v002"):
    for prefix in ("crs", "crs_sample"):
      for name in _EQUAL:
        expected.add(f"{prefix}_{name}_{version}")
        if name != "redial_only":
          expected.add(f"{prefix}_{name}_proportional_{version}")
    for name in ("redial_sequences", "redial_tags", "t5cr_no_reviews"):
      expected.add(f"crs_small_{name}_{version}")
  assert {n for n in seqio.MixtureRegistry.names()
          if n.startswith("crs_")} == expected


@pytest.mark.parametrize("name", ["redial_sequences", "redial_tags",
                                  "t5cr_no_reviews"])
@pytest.mark.parametrize("version", ["v001", "v002"])
def test_study_mixtures_pair_full_redial_with_ml_latest_small(name, version):
  mixture = seqio.get_mixture_or_task(f"crs_small_{name}_{version}")
  expected = {
      (f"crs_redial_{version}" if t == "redial"
       else f"crs_small_{t}_v001"): r
      for t, r in _EQUAL[name].items()}
  assert _normalized(mixture) == pytest.approx(expected)


@pytest.mark.parametrize("prefix", ["crs", "crs_sample"])
@pytest.mark.parametrize("name", sorted(_EQUAL))
@pytest.mark.parametrize("version", ["v001", "v002"])
def test_equal_rates(prefix, name, version):
  """`_v00N` mixtures hold ReDial `_v00N` and the MovieLens `_v001` tasks."""
  mixture = seqio.get_mixture_or_task(f"{prefix}_{name}_{version}")
  expected = {
      f"{prefix}_{t}_{version if t == 'redial' else 'v001'}": r
      for t, r in _EQUAL[name].items()}
  assert _normalized(mixture) == pytest.approx(expected)


def test_sample_proportional_rates(tmp_path):
  data_dir = str(tmp_path)
  seqio.set_tfds_data_dir_override(data_dir)
  try:
    n_train = {}
    for task, config in (
        ("redial", "crs_redial/sample"),
        ("ml_sequences", "crs_movielens/sequences_sample"),
        ("ml_tags", "crs_movielens/tags_sample"),
        ("ml_reviews", "crs_movielens/reviews_sample"),
    ):
      builder = tfds.builder(config, data_dir=data_dir)
      builder.download_and_prepare()
      n_train[task] = sum(
          1 for _ in builder.as_dataset(split="train").as_numpy_iterator())
    # seqio.mixing_rate_num_examples counts *input* examples, so the
    # reversed tags task weighs as many as the tags task it filters.
    n_train["ml_tags_reversed"] = n_train["ml_tags"]
    mixture = seqio.get_mixture_or_task("crs_sample_t5cr_proportional_v001")
    total = sum(n_train.values())
    assert _normalized(mixture) == pytest.approx(
        {f"crs_sample_{t}_v001": n / total for t, n in n_train.items()}
    )
    ds = mixture.get_dataset(
        {"inputs": 512, "targets": 128}, split="train", shuffle=False,
        use_cached=False, seed=0,
    )
    vocab = mixture.output_features["inputs"].vocabulary
    prefixes = {vocab.decode(ex["inputs"].tolist()).split(":")[0]
                for ex in ds.take(200).as_numpy_iterator()}
    assert {"redial conversation", "movielens sequence", "movielens tags",
            "movielens tags reversed"} <= prefixes
  finally:
    seqio.set_tfds_data_dir_override(None)
