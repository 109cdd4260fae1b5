"""seqio Tasks of ReDial conversational recommendation (registrations only).

| task                           | data                   | casing          |
|--------------------------------|------------------------|-----------------|
| `crs_redial_v002`              | `crs_redial/full`      | lower (T5-CR)   |
| `crs_redial_cased_v002`        | `crs_redial/full`      | as written      |
| `crs_sample_redial_v002`       | `crs_redial/sample`    | lower           |
| `crs_sample_redial_cased_v002` | `crs_redial/sample`    | as written      |

Versions. `_v002` applies T5-CR's spacing rule (`preprocessors.fix_spacing`,
the authors' `fix_spacing`: `@ shrek (2001) @ , but` -> `@ shrek (2001) @,
but`, `it 's` -> `it's`, ...) to the history and the reply, so the text is
the paper's format but for the documented deviations (README, "The T5-CR
text format"). `_v001` is the same without it (1,686 of the 7,978 test
examples differ) and stays registered, unchanged, to reproduce earlier runs.

Each example is one recommender turn: `inputs` = `"redial conversation: "` +
the earlier turns (`[User] ... [Assistant] ...`), `targets` = the turn, with
movies written `@ title (year) @`. The metadata features (`conversation_id`,
`turn_index`, `seeker_movies`, `recommender_movies`, `target_movies`,
`target_movies_repeated`, `context_movies`) pass through untouched except for
lower-casing of the titles in the lower-cased tasks. Histories longer than
the inputs length keep the prefix and their most recent tokens
(`preprocessors.trim_inputs_keep_recent`). `postprocess_fn` keeps
predictions as text and turns targets into dicts with the metadata
(`postprocessors.redial_postprocess`); the metric functions are
`crs_tasks.metrics.REDIAL_METRIC_FNS` (end-to-end recall, BLEU with and without
titles, NLTK-style sentence BLEU, distinct-n), so `seqio.Evaluator` and t5x's
eval compute them too.

The sample tasks prepare `crs_redial/sample` from the bundled files on first
use; the full tasks need `crs_redial/full` prepared in the TFDS data dir
(`tfds_builders.redial.prepare_redial` / `python -m crs_tasks.prepare`).
"""

import functools
import itertools

import seqio

from crs_tasks import features
from crs_tasks import metrics
from crs_tasks import postprocessors
from crs_tasks import preprocessors
from crs_tasks import tfds_source

# pylint: disable-next=unused-import
from crs_tasks.tfds_builders import redial as redial_builder

_SPLITS = ("train", "validation", "test")
# Long histories lose their oldest turns, not the latest ones: the task
# prefix ("redial conversation:", 5 T5 pieces) plus the most recent tokens.
_KEEP_RECENT = functools.partial(
    preprocessors.trim_inputs_keep_recent,
    prefix=preprocessors.REDIAL_PREFIX,
)

# _v001: as first released; _v002: + T5-CR's fix_spacing.
_RESPACE = {
    "v001": [],
    "v002": [
        functools.partial(
            preprocessors.fix_spacing,
            features=preprocessors.REDIAL_RAW_TEXT_FEATURES,
        )
    ],
}

for (_prefix, _config), _version in itertools.product(
    (("crs", "full"), ("crs_sample", "sample")), ("v001", "v002")
):
  # ======================== ReDial (lower-cased, T5-CR) =====================
  seqio.TaskRegistry.add(
      f"{_prefix}_redial_{_version}",
      source=tfds_source.TfdsDataSource(
          tfds_name=f"crs_redial/{_config}:1.0.0", splits=_SPLITS
      ),
      preprocessors=_RESPACE[_version] + [
          functools.partial(
              preprocessors.redial_to_text,
              prefix=preprocessors.REDIAL_PREFIX,
          ),
          functools.partial(
              preprocessors.lowercase,
              features=preprocessors.REDIAL_TEXT_FEATURES,
          ),
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          _KEEP_RECENT,
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      postprocess_fn=postprocessors.redial_postprocess,
      metric_fns=list(metrics.REDIAL_METRIC_FNS),
  )

  # ============================== ReDial (cased) ============================
  seqio.TaskRegistry.add(
      f"{_prefix}_redial_cased_{_version}",
      source=tfds_source.TfdsDataSource(
          tfds_name=f"crs_redial/{_config}:1.0.0", splits=_SPLITS
      ),
      preprocessors=_RESPACE[_version] + [
          functools.partial(
              preprocessors.redial_to_text,
              prefix=preprocessors.REDIAL_PREFIX,
          ),
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          _KEEP_RECENT,
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      postprocess_fn=postprocessors.redial_postprocess,
      metric_fns=list(metrics.REDIAL_METRIC_FNS),
  )
