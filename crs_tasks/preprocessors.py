"""Pure tf.data preprocessors of the crs_tasks Tasks.

Each preprocessor maps one example to one example (or filters); the
docstring of each shows a literal input and the output it becomes. Arguments
are bound with `functools.partial` in the registration modules
(`crs_tasks/redial.py`, `crs_tasks/movielens.py`). Cross-example work
(dialogue splitting, user histories) happens offline in the TFDS builders.

To extend: add a function under its family's banner, with a literal-example
docstring and a literal-example test in tests/crs_tasks/.
"""

from collections.abc import Mapping, Sequence
import re

import seqio
import tensorflow as tf

from crs_tasks import redial_utils


# ================================== Generic ==================================


@seqio.map_over_dataset
def lowercase(
    ex: Mapping[str, tf.Tensor],
    features: Sequence[str] = ("inputs", "targets"),
) -> dict[str, tf.Tensor]:
  """Lower-cases the UTF-8 string features named in `features`.

  With `features=("inputs", "target_movies")`,
  `{"inputs": "I liked @ Amélie (2001) @", "target_movies": ["Heat (1995)"],
  "turn_index": 3}` becomes `{"inputs": "i liked @ amélie (2001) @",
  "target_movies": ["heat (1995)"], "turn_index": 3}`. Scalar and 1-D string
  tensors are both fine; features not named pass through unchanged.

  Args:
    ex: an example.
    features: names of the string features to lower-case.

  Returns:
    The example with those features lower-cased (not only ASCII).

  Raises:
    KeyError: naming a feature in `features` that the example lacks.
  """
  out = dict(ex)
  for name in features:
    if name not in ex:
      raise KeyError(
          f"lowercase: feature {name!r} not in example (has {sorted(ex)})"
      )
    out[name] = tf.strings.lower(ex[name], encoding="utf-8")
  return out


# =================================== ReDial ==================================
# Formatting of the `crs_redial` TFDS examples (one per recommender turn,
# built offline by `crs_tasks.redial_utils`). The metadata features pass
# through unchanged for the evaluators.

REDIAL_PREFIX = "redial conversation: "
# What the lower-cased ReDial tasks lower-case: text and titles alike, so the
# titles still match the text.
REDIAL_TEXT_FEATURES = ("inputs", "targets") + redial_utils.TITLE_FEATURES


@seqio.map_over_dataset
def redial_to_text(
    ex: Mapping[str, tf.Tensor], prefix: str = REDIAL_PREFIX
) -> dict[str, tf.Tensor]:
  """Formats a ReDial turn as `inputs`/`targets`, keeping the metadata.

  `{"context": "[User] Hi [Assistant] Hello", "response": "Try @ Heat (1995)
  @", "turn_index": 1, "target_movies": ["Heat (1995)"], ...}` becomes
  `{"inputs": "redial conversation: [User] Hi [Assistant] Hello", "targets":
  "Try @ Heat (1995) @", "turn_index": 1, "target_movies": ["Heat (1995)"],
  ...}`. An empty context (the recommender speaks first) gives `inputs`
  `"redial conversation:"` (the prefix without its trailing space).

  Args:
    ex: a `crs_redial` example.
    prefix: task prefix.

  Returns:
    `inputs` and `targets` plus every other feature except `context` and
    `response`.
  """
  out = {k: v for k, v in ex.items() if k not in ("context", "response")}
  out["inputs"] = tf.strings.strip(tf.strings.join([prefix, ex["context"]]))
  out["targets"] = ex["response"]
  return out


# T5-CR's spacing rule (googleinterns/e2e-convrec `trainer/preprocessing.py`,
# `fix_spacing` in `rd_jsonl_to_tsv`), applied to the dialogue history and to
# the reply before lower-casing: each literal pair in order, every
# occurrence, left to right (`str.replace`). It mostly glues punctuation to
# the word before it, e.g. the comma after a movie: `@ Shrek (2001) @ , but`
# -> `@ Shrek (2001) @, but`.
FIX_SPACING_RULES = (
    (" ,", ","),
    (" .", "."),
    (" %", "%"),
    (" - ", "-"),
    (" : ", ":"),
    (" / ", "/"),
    ("( ", "("),
    (" )", ")"),
    ("`` ", '"'),
    (" ''", '"'),
    (" 's", "'s"),
    ("s ' ", "s' "),
)
# What the `_v002` ReDial tasks respace (before `redial_to_text`).
REDIAL_RAW_TEXT_FEATURES = ("context", "response")


def fix_spacing_text(text: str) -> str:
  """`FIX_SPACING_RULES` on a python string (the reference of `fix_spacing`).

  `"[User] i liked @ Shrek (2001) @ , but ( not ) it 's long"` ->
  `"[User] i liked @ Shrek (2001) @, but (not) it's long"`.
  """
  for old, new in FIX_SPACING_RULES:
    text = text.replace(old, new)
  return text


@seqio.map_over_dataset
def fix_spacing(
    ex: Mapping[str, tf.Tensor],
    features: Sequence[str] = REDIAL_RAW_TEXT_FEATURES,
) -> dict[str, tf.Tensor]:
  """T5-CR's `fix_spacing` (`FIX_SPACING_RULES`) on string features.

  `{"context": "[User] loved @ Shrek (2001) @ , but", "response": "it 's
  ok ."}` becomes `{"context": "[User] loved @ Shrek (2001) @, but",
  "response": "it's ok."}`; other features pass through. The same result as
  `fix_spacing_text` (RE2 global replacement of an escaped literal is
  `str.replace`: leftmost, non-overlapping, left to right).

  Args:
    ex: an example.
    features: names of the string features to respace.

  Returns:
    The example with those features respaced.
  """
  out = dict(ex)
  for name in features:
    text = ex[name]
    for old, new in FIX_SPACING_RULES:
      text = tf.strings.regex_replace(text, re.escape(old),
                                      new.replace("\\", "\\\\"))
    out[name] = text
  return out


def trim_inputs_keep_recent(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int] | None,
    num_prefix_tokens: int = 0,
    output_features: Mapping[str, seqio.Feature] | None = None,
    prefix: str | None = None,
) -> tf.data.Dataset:
  """Trims long tokenized `inputs` from the left, keeping the latest turns.

  seqio's `append_eos_after_trim` keeps the *first* `length - 1` tokens, which
  for a dialogue history drops the turns the reply answers. Run before it,
  this keeps the first `num_prefix_tokens` tokens (the task prefix) and the
  last `length - 1 - num_prefix_tokens`; the cut may fall inside a turn.
  With `sequence_length["inputs"] = 6` and `num_prefix_tokens = 2`,
  `[7, 8, 1, 2, 3, 4, 5, 6]` becomes `[7, 8, 4, 5, 6]` (EOS added later);
  inputs of at most 5 tokens are unchanged.

  Args:
    dataset: tokenized examples.
    sequence_length: feature lengths (None or no "inputs": no-op).
    num_prefix_tokens: leading tokens always kept.
    output_features: the Task's features (seqio passes them); with `prefix`,
      its `inputs` vocabulary counts the prefix tokens.
    prefix: the task prefix text; when given, `num_prefix_tokens` is the
      number of pieces of `prefix.strip()` (a trailing space joins the next
      word's piece), counted when the dataset is built, not at import.

  Returns:
    The dataset with trimmed `inputs`.
  """
  if not sequence_length or sequence_length.get("inputs") is None:
    return dataset
  if prefix is not None:
    if not output_features or "inputs" not in output_features:
      raise ValueError("trim_inputs_keep_recent(prefix=...) needs the "
                       "Task's output_features with an 'inputs' feature")
    num_prefix_tokens = len(
        output_features["inputs"].vocabulary.encode(prefix.strip()))
  keep = sequence_length["inputs"] - 1  # room for EOS
  head = min(num_prefix_tokens, keep)
  tail = keep - head

  def trim(ex):
    ex = dict(ex)
    inputs = ex["inputs"]
    n = tf.shape(inputs)[0]
    trimmed = tf.concat([inputs[:head], inputs[n - tail:]], axis=0)
    ex["inputs"] = tf.cond(n > keep, lambda: trimmed, lambda: inputs)
    return ex

  return dataset.map(trim, num_parallel_calls=tf.data.AUTOTUNE)


# ================================= MovieLens =================================
# Formatting of the `crs_movielens` TFDS examples (one example in, one out;
# all joins and sampling happen offline in the builder). Titles are written
# `@ Title (Year) @` like ReDial movie mentions; each task has its own prefix.

ML_SEQUENCE_PREFIX = "movielens sequence: "
ML_TAGS_PREFIX = "movielens tags: "
ML_TAGS_REVERSED_PREFIX = "movielens tags reversed: "
ML_REVIEW_PREFIX = "movielens review: "


def _ml_mark_titles(titles: tf.Tensor) -> tf.Tensor:
  """`"Heat (1995)"` -> `"@ Heat (1995) @"` (scalar or 1-D string tensor)."""
  return tf.strings.join(["@ ", titles, " @"])


def _ml_lower(text: tf.Tensor, lowercase: bool) -> tf.Tensor:
  """Lower-cases UTF-8 text (not only ASCII) when `lowercase`."""
  return tf.strings.lower(text, encoding="utf-8") if lowercase else text


@seqio.map_over_dataset
def ml_sequence_to_text(
    ex: Mapping[str, tf.Tensor],
    prefix: str = ML_SEQUENCE_PREFIX,
    lowercase: bool = True,
) -> dict[str, tf.Tensor]:
  """Formats a MovieLens watch sequence as text.

  `{"user_id": 3, "movies": ["Heat (1995)", "Up (2009)"], "target":
  "Alien (1979)"}` becomes `{"inputs": "movielens sequence: @ heat (1995) @,
  @ up (2009) @", "targets": "@ alien (1979) @"}`.

  The authors' code (googleinterns/e2e-convrec `data/build_movielens.py`)
  writes `"@ heat (1995) @ up (2009) @"` with a bare target; we wrap every
  title in its own `@ ... @` (also the target), as ReDial mentions are, so
  `crs_tasks.metrics.extract_titles` reads inputs and predictions alike.

  Args:
    ex: a `crs_movielens/sequences_*` example.
    prefix: task prefix.
    lowercase: lower-case inputs and targets (as for ReDial).

  Returns:
    `{"inputs", "targets"}` scalar strings.
  """
  movies = tf.strings.reduce_join(
      _ml_mark_titles(ex["movies"]), separator=", "
  )
  return {
      "inputs": _ml_lower(tf.strings.join([prefix, movies]), lowercase),
      "targets": _ml_lower(_ml_mark_titles(ex["target"]), lowercase),
  }


@seqio.map_over_dataset
def ml_tags_to_text(
    ex: Mapping[str, tf.Tensor],
    prefix: str = ML_TAGS_PREFIX,
    lowercase: bool = True,
) -> dict[str, tf.Tensor]:
  """Formats a tag subset -> movie example as text.

  `{"title": "The Matrix (1999)", "tags": ["cyberpunk", "Sci-Fi"], ...}`
  becomes `{"inputs": "movielens tags: cyberpunk, sci-fi", "targets":
  "@ the matrix (1999) @"}`.

  Args:
    ex: a `crs_movielens/tags_*` example.
    prefix: task prefix.
    lowercase: lower-case inputs and targets.

  Returns:
    `{"inputs", "targets"}` scalar strings.
  """
  tags = tf.strings.reduce_join(ex["tags"], separator=", ")
  return {
      "inputs": _ml_lower(tf.strings.join([prefix, tags]), lowercase),
      "targets": _ml_lower(_ml_mark_titles(ex["title"]), lowercase),
  }


def ml_first_tag_subset(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Keeps one example per movie (`subset_index == 0`).

  Used by the reversed tags task, whose target is the movie's full tag list,
  so the other subsets would be duplicates.

  Args:
    ds: `crs_movielens/tags_*` examples.

  Returns:
    The examples with `subset_index == 0`.
  """
  return ds.filter(lambda ex: tf.equal(ex["subset_index"], 0))


@seqio.map_over_dataset
def ml_tags_reversed_to_text(
    ex: Mapping[str, tf.Tensor],
    prefix: str = ML_TAGS_REVERSED_PREFIX,
    lowercase: bool = True,
) -> dict[str, tf.Tensor]:
  """Formats a movie -> all its tags example as text.

  `{"title": "The Matrix (1999)", "all_tags": ["cyberpunk", "Sci-Fi"], ...}`
  becomes `{"inputs": "movielens tags reversed: @ the matrix (1999) @",
  "targets": "cyberpunk, sci-fi"}`.

  Args:
    ex: a `crs_movielens/tags_*` example.
    prefix: task prefix.
    lowercase: lower-case inputs and targets.

  Returns:
    `{"inputs", "targets"}` scalar strings.
  """
  inputs = tf.strings.join([prefix, _ml_mark_titles(ex["title"])])
  targets = tf.strings.reduce_join(ex["all_tags"], separator=", ")
  return {
      "inputs": _ml_lower(inputs, lowercase),
      "targets": _ml_lower(targets, lowercase),
  }


@seqio.map_over_dataset
def ml_review_to_text(
    ex: Mapping[str, tf.Tensor],
    prefix: str = ML_REVIEW_PREFIX,
    lowercase: bool = True,
) -> dict[str, tf.Tensor]:
  """Formats a movie + preceding review sentences -> next sentence example.

  `{"title": "Up (2009)", "context": "Sad.", "target": "Then happy.", ...}`
  becomes `{"inputs": "movielens review: @ up (2009) @ sad.", "targets":
  "then happy."}`; an empty context leaves `"movielens review: @ up (2009)
  @"`.

  Args:
    ex: a `crs_movielens/reviews_*` example.
    prefix: task prefix.
    lowercase: lower-case inputs and targets.

  Returns:
    `{"inputs", "targets"}` scalar strings.
  """
  inputs = tf.strings.strip(
      tf.strings.join(
          [prefix, _ml_mark_titles(ex["title"]), " ", ex["context"]]
      )
  )
  return {
      "inputs": _ml_lower(inputs, lowercase),
      "targets": _ml_lower(ex["target"], lowercase),
  }
