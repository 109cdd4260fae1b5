"""seqio Tasks of the MovieLens-derived auxiliary data (registrations only).

| task                            | inputs -> targets                       |
|---------------------------------|-----------------------------------------|
| `crs_ml_sequences_v001`         | `movielens sequence: @ a @, @ b @` ->   |
|                                 | `@ next movie @`                        |
| `crs_ml_tags_v001`              | `movielens tags: t1, t2` -> `@ movie @` |
| `crs_ml_tags_reversed_v001`     | `movielens tags reversed: @ movie @` -> |
|                                 | `t1, t2, ...` (all its tags)            |
| `crs_ml_reviews_v001`           | `movielens review: @ movie @ s1 s2` ->  |
|                                 | `s3`                                    |

`crs_sample_*` twins read the bundled sample (`crs_movielens/*_sample`),
prepared on first use with no download; `crs_small_*` twins (no reviews)
read ml-latest-small (`crs_movielens/{sequences,tags}_small`). Full tasks read
`crs_movielens/{sequences,tags}_full` (ml-25m) and `reviews_full` (your
`reviews.csv`); prepare them with `python -m crs_tasks.prepare`.

Every task has a `seqio.CacheDatasetPlaceholder`, so it can be cached
offline with Beam, e.g. on the bundled sample with the DirectRunner:

  python -m seqio.scripts.cache_tasks_main \
      --module_import=crs_tasks \
      --tasks=crs_sample_ml_sequences_v001 \
      --output_cache_dir=/tmp/crs_cache \
      --alsologtostderr

and then read with `seqio.add_global_cache_dirs(["/tmp/crs_cache"])` and
`task.get_dataset(..., use_cached=True)`.
"""

import functools

import seqio

from crs_tasks import features
from crs_tasks import preprocessors
from crs_tasks import tfds_source
from crs_tasks.tfds_builders import movielens as movielens_builder  # pylint: disable=unused-import

_VERSION = "1.0.0"
_SPLITS = ("train", "validation")


def _source(config: str) -> tfds_source.TfdsDataSource:
  return tfds_source.TfdsDataSource(
      tfds_name=f"crs_movielens/{config}:{_VERSION}", splits=_SPLITS
  )


def _preprocessors(*formatting):
  return [
      *formatting,
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      seqio.preprocessors.append_eos_after_trim,
  ]


# crs_small_*: ml-latest-small (`python -m crs_tasks.prepare
# --movielens_source=ml-latest-small`), the MovieLens release on a laptop and
# in this project's study; it has no reviews.
for _prefix, _data in (("crs", "full"), ("crs_sample", "sample"),
                       ("crs_small", "small")):
  # ============================ Watch sequences =============================
  seqio.TaskRegistry.add(
      f"{_prefix}_ml_sequences_v001",
      source=_source(f"sequences_{_data}"),
      preprocessors=_preprocessors(
          functools.partial(preprocessors.ml_sequence_to_text, lowercase=True)
      ),
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      metric_fns=[],
  )

  # ================================== Tags ==================================
  seqio.TaskRegistry.add(
      f"{_prefix}_ml_tags_v001",
      source=_source(f"tags_{_data}"),
      preprocessors=_preprocessors(
          functools.partial(preprocessors.ml_tags_to_text, lowercase=True)
      ),
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      metric_fns=[],
  )
  seqio.TaskRegistry.add(
      f"{_prefix}_ml_tags_reversed_v001",
      source=_source(f"tags_{_data}"),
      preprocessors=_preprocessors(
          preprocessors.ml_first_tag_subset,
          functools.partial(
              preprocessors.ml_tags_reversed_to_text, lowercase=True
          ),
      ),
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      metric_fns=[],
  )

  # ================================ Reviews =================================
  if _data == "small":
    continue
  seqio.TaskRegistry.add(
      f"{_prefix}_ml_reviews_v001",
      source=_source(f"reviews_{_data}"),
      preprocessors=_preprocessors(
          functools.partial(preprocessors.ml_review_to_text, lowercase=True)
      ),
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      metric_fns=[],
  )
