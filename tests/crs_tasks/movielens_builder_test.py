"""The `crs_movielens` TFDS builder's configs: one class per dataset."""

import pytest

from crs_tasks.tfds_builders import movielens as movielens_builder


def test_each_config_is_of_its_dataset_class():
  kinds = {c.name: type(c).__name__ for c in
           movielens_builder.CrsMovielens.BUILDER_CONFIGS}
  assert kinds == {
      "sequences_full": "SequencesConfig", "tags_full": "TagsConfig",
      "reviews_full": "ReviewsConfig",
      "sequences_small": "SequencesConfig", "tags_small": "TagsConfig",
      "sequences_sample": "SequencesConfig", "tags_sample": "TagsConfig",
      "reviews_sample": "ReviewsConfig",
  }


@pytest.mark.parametrize("config_class, features", [
    (movielens_builder.SequencesConfig, {"user_id", "movies", "target"}),
    (movielens_builder.TagsConfig,
     {"movie_id", "title", "tags", "all_tags", "subset_index"}),
    (movielens_builder.ReviewsConfig,
     {"title", "context", "target", "review_index", "sentence_index"}),
])
def test_config_class_owns_its_feature_schema(config_class, features):
  assert set(config_class(name="x").features()) == features


def test_tags_read_the_genome_only_from_ml_25m():
  assert movielens_builder.TagsConfig(
      name="x", source="ml-25m").needed_files() == [
          "movies", "genome_scores", "genome_tags"]
  assert movielens_builder.TagsConfig(
      name="x", source="ml-latest-small").needed_files() == ["movies", "tags"]


def test_release_files_are_what_sequences_and_tags_read():
  assert movielens_builder.release_files("ml-25m") == [
      "genome_scores", "genome_tags", "movies", "ratings"]
  assert movielens_builder.release_files("ml-latest-small") == [
      "movies", "ratings", "tags"]


def test_sample_sequences_downsample_less():
  by_name = {c.name: c for c in
             movielens_builder.CrsMovielens.BUILDER_CONFIGS}
  assert by_name["sequences_sample"].downsample_t == 1e-2
  assert by_name["sequences_full"].downsample_t == 1e-3
  assert by_name["reviews_full"].source == "manual"
