"""seqio Tasks of the study's shared pretraining start (registrations only).

| task                                      | corpus                        |
|-------------------------------------------|-------------------------------|
| `crs_small_pretrain_span_corruption_v001` | ReDial train dialogues (full) |
|                                           | + ml-latest-small titles      |
| `crs_sample_pretrain_span_corruption_v001`| the bundled samples            |

T5's span corruption (`span_corruption.span_corruption`: noise density
0.15, mean span 3, sentinels from the vocabulary's extra ids) over
`pretrain_corpus` (what is in it, and what is kept out: no liked-movie
sequences, tags or genres). The text is respaced like `crs_redial_v002`
(`fix_spacing`) and lower-cased. `scripts/run_study2.sh` pretrains on it
with `gin/experiments/study2_pretrain.gin`; every study run then starts from
that checkpoint (`INITIAL_CHECKPOINT_PATH`).
"""

import functools

import seqio

from crs_tasks import features
from crs_tasks import pretrain_corpus
from crs_tasks import preprocessors
from crs_tasks import span_corruption

for _prefix, _redial, _movielens in (
    ("crs_small", "full", "sequences_small"),
    ("crs_sample", "sample", "sequences_sample"),
):
  # ========================= Span-corruption pretraining =====================
  seqio.TaskRegistry.add(
      f"{_prefix}_pretrain_span_corruption_v001",
      source=seqio.FunctionDataSource(
          dataset_fn=functools.partial(
              pretrain_corpus.corpus_dataset,
              redial_config=_redial,
              movielens_config=_movielens,
          ),
          splits=("train", "validation"),
      ),
      preprocessors=[
          functools.partial(preprocessors.fix_spacing, features=("text",)),
          functools.partial(preprocessors.lowercase, features=("text",)),
          functools.partial(
              seqio.preprocessors.rekey, key_map={"targets": "text"}
          ),
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          span_corruption.span_corruption,
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=features.DEFAULT_OUTPUT_FEATURES,
      metric_fns=[],
  )
