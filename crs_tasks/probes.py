"""seqio Tasks of the four T5-CR probe sets (registrations only).

| task                          | inputs -> targets (negative_targets)      |
|-------------------------------|-------------------------------------------|
| `probe_recommendation_v001`   | `redial conversation: [user] can you      |
|                               | recommend me a movie like @ x @?` ->      |
|                               | `sure, have you seen @ y @?`              |
| `probe_attribute_v001`        | `... a <tag> movie?` -> `... @ y @?`      |
| `probe_description_v001`      | `... what is your opinion on @ x @?` ->   |
|                               | review snippet                            |
| `probe_combination_v001`      | `... a <tag> movie like @ x @?` ->        |
|                               | `... @ y @?`                              |
| `probe_recommendation_in_     | `movielens sequence: @ x @` -> `@ y @`    |
| format_v001`                  | (the recommendation pairs, ML format)     |
| `probe_attribute_in_format_   | `movielens tags: <tag>` -> `@ y @`        |
| v001`                         | (the attribute pairs, ML format)          |

Each example is one pair: `targets` is the correct reply and the string
feature `negative_targets` the same reply with the negative; `probe`,
`pair_id`, `query_movie`, `positive_movie`, `negative_movie` and `tag` are
pass-through metadata. Only `inputs`/`targets` are tokenized (EOS appended),
so t5x's score mode (or `EncoderDecoderModel.score_batch`) gives
log p(targets); `eval.probes.probe_lib.score_probe` scores both replies.

Sources. The pairs are built offline (cross-example joins: PMI^2, popularity)
by `crs_tasks.probe_builders` into `<probe>.jsonl` files holding the final model
text (lower-cased, ReDial prefix); these Tasks only read and tokenize them:

* `probe_<name>_v001` read `$CRS_PROBES_DIR/<name>.jsonl` (default
  `~/.cache/crs_tasks/probes`), built with
  `python -m crs_tasks.build_probes --movielens_dir=.../ml-25m
  --reviews_csv=reviews.csv --build_dir=$CRS_PROBES_DIR`;
* `probe_sample_<name>_v001` read the bundled
  `crs_tasks/sample_data/probes/<name>.jsonl` (built from the bundled
  MovieLens and reviews samples; see the README there).

Only the `validation` split exists.
"""

import functools
import os

import seqio
import tensorflow as tf

from crs_tasks import features
from crs_tasks import probe_io

DEFAULT_PROBES_DIR = os.path.join("~", ".cache", "crs_tasks", "probes")
SAMPLE_PROBES_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "sample_data", "probes"
)


def probes_dir() -> str:
  """`$CRS_PROBES_DIR`, else `~/.cache/crs_tasks/probes` (read at use)."""
  return os.path.expanduser(
      os.environ.get(probe_io.PROBES_DIR_ENV) or DEFAULT_PROBES_DIR
  )


def probe_dataset(
    split: str,
    shuffle_files: bool = False,
    seed=None,
    *,
    name: str,
    sample: bool,
) -> tf.data.Dataset:
  """`seqio.FunctionDataSource` dataset_fn over one probe file.

  Args:
    split: only "validation".
    shuffle_files: unused (one file, fixed order).
    seed: unused.
    name: probe name.
    sample: read the bundled sample instead of `probes_dir()`.

  Returns:
    A dataset of scalar string features `probe_io.PROBE_FIELDS`.
  """
  del shuffle_files, seed
  if split != "validation":
    raise ValueError(f"probe tasks have only 'validation', got {split!r}")
  folder = SAMPLE_PROBES_DIR if sample else probes_dir()
  rows = probe_io.read_probe_jsonl(os.path.join(folder, f"{name}.jsonl"))
  return tf.data.Dataset.from_tensor_slices({
      k: tf.constant([r[k] for r in rows], dtype=tf.string)
      for k in probe_io.PROBE_FIELDS
  })


for _prefix, _sample in (("probe", False), ("probe_sample", True)):
  for _name in probe_io.ALL_PROBE_NAMES:
    # =============================== Probes =================================
    seqio.TaskRegistry.add(
        f"{_prefix}_{_name}_v001",
        source=seqio.FunctionDataSource(
            dataset_fn=functools.partial(
                probe_dataset, name=_name, sample=_sample
            ),
            splits=("validation",),
        ),
        preprocessors=[
            seqio.preprocessors.tokenize,
            seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=features.DEFAULT_OUTPUT_FEATURES,
        metric_fns=[],
    )
