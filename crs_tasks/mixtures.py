"""seqio Mixtures of ReDial and the MovieLens tasks (registrations only).

Every mixture exists as `_v001` (ReDial `_v001`) and `_v002` (ReDial
`_v002`, with T5-CR's `fix_spacing`; the default); the MovieLens tasks are
`_v001` in both.

| mixture (`_v002`; `_v001`)    | tasks (default rate)                       |
|-------------------------------|--------------------------------------------|
| `crs_redial_only_v002`        | ReDial                                     |
| `crs_redial_sequences_v002`   | ReDial 1, ML sequences 1                   |
| `crs_redial_tags_v002`        | ReDial 1, ML tags 0.5, ML tags reversed 0.5|
| `crs_redial_reviews_v002`     | ReDial 1, ML reviews 1                     |
| `crs_t5cr_v002`               | ReDial 1, sequences 1, tags 0.5,           |
|                               | tags reversed 0.5, reviews 1 (T5-CR)       |
| `crs_t5cr_no_reviews_v002`    | T5-CR without reviews                      |
| `crs_small_redial_*_v002`,    | full ReDial + the ml-latest-small tasks    |
| `crs_small_t5cr_no_reviews_v002` | (`crs_small_ml_*`): the study's mixtures|

Rates are equal per *dataset*, as in the paper: ReDial, sequences, tags and
reviews each get 1, and the two tags tasks share their dataset's 1. Each
mixture of several tasks has a `..._proportional_v002` variant with
`seqio.mixing_rate_num_examples` (train examples) instead. Until a task is
cached, seqio counts its *input* examples, so the reversed tags task (which
keeps 1 of ~3 tag subsets per movie) weighs as much as the tags task (in
`crs_sample_t5cr_no_reviews_proportional_v002`: 559 for 194 examples, 21.6%
of the samples instead of 8.7%); after Beam caching it uses the
preprocessed counts. Every mixture has a
`crs_sample_` twin on the bundled data; `crs_sample_t5cr_v002` is the
embedded default.
"""

import seqio

from crs_tasks import movielens  # pylint: disable=unused-import
from crs_tasks import redial  # pylint: disable=unused-import

# Mixture suffix -> [(task suffix, equal-by-dataset rate)].
_MIXTURES = {
    "redial_only": [("redial", 1.0)],
    "redial_sequences": [("redial", 1.0), ("ml_sequences", 1.0)],
    "redial_tags": [
        ("redial", 1.0), ("ml_tags", 0.5), ("ml_tags_reversed", 0.5)
    ],
    "redial_reviews": [("redial", 1.0), ("ml_reviews", 1.0)],
    "t5cr_no_reviews": [
        ("redial", 1.0),
        ("ml_sequences", 1.0),
        ("ml_tags", 0.5),
        ("ml_tags_reversed", 0.5),
    ],
    "t5cr": [
        ("redial", 1.0),
        ("ml_sequences", 1.0),
        ("ml_tags", 0.5),
        ("ml_tags_reversed", 0.5),
        ("ml_reviews", 1.0),
    ],
}

# The study's mixtures (README, "The study"): full ReDial with the MovieLens
# tasks of ml-latest-small, which has no reviews, so "all" is ReDial +
# sequences + tags.
_SMALL_MIXTURES = {
    "redial_sequences": [("crs_redial_v001", 1.0),
                         ("crs_small_ml_sequences_v001", 1.0)],
    "redial_tags": [("crs_redial_v001", 1.0),
                    ("crs_small_ml_tags_v001", 0.5),
                    ("crs_small_ml_tags_reversed_v001", 0.5)],
    "t5cr_no_reviews": [("crs_redial_v001", 1.0),
                        ("crs_small_ml_sequences_v001", 1.0),
                        ("crs_small_ml_tags_v001", 0.5),
                        ("crs_small_ml_tags_reversed_v001", 0.5)],
}

# The ReDial task of each mixture version; the MovieLens tasks are _v001 in
# both (their preprocessing did not change).
_REDIAL = {"v001": "redial_v001", "v002": "redial_v002"}


def _task(prefix: str, task: str, version: str) -> str:
  return f"{prefix}_{_REDIAL[version] if task == 'redial' else task + '_v001'}"


for _version in _REDIAL:
  for _name, _tasks in _SMALL_MIXTURES.items():
    seqio.MixtureRegistry.add(
        f"crs_small_{_name}_{_version}",
        [(t.replace("redial_v001", _REDIAL[_version]), rate)
         for t, rate in _tasks],
    )

  for _prefix in ("crs", "crs_sample"):
    for _name, _tasks in _MIXTURES.items():
      seqio.MixtureRegistry.add(
          f"{_prefix}_{_name}_{_version}",
          [(_task(_prefix, task, _version), rate) for task, rate in _tasks],
      )
      if len(_tasks) == 1:
        continue
      seqio.MixtureRegistry.add(
          f"{_prefix}_{_name}_proportional_{_version}",
          [_task(_prefix, task, _version) for task, _ in _tasks],
          default_rate=seqio.mixing_rate_num_examples,
      )
