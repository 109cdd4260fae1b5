"""The study's pretraining corpus: training-side text without the auxiliary
tasks' signal (plain Python over the prepared TFDS data).

Two kinds of documents (README, "The study"):

* **ReDial dialogues**: each dialogue of the ReDial split once, as the
  dialogue-format text up to and including its last recommender turn:
  `[User] ... [Assistant] ...` with movies written `@ Title (Year) @` (the
  `crs_redial` example with the highest `turn_index`: its `context` + `
  [Assistant] ` + its `response`). The ReDial-only baseline fine-tunes on
  the same dialogues, so this gives no mixture anything the baseline lacks.
* **MovieLens titles**: every movie title of the ML-sequences *training*
  split (its inputs and targets), de-duplicated, sorted alphabetically and
  written `@ title (year) @, @ title (year) @, ...`, `TITLES_PER_DOCUMENT`
  to a document. Alphabetical order carries no co-occurrence; the corpus has
  no liked-movie sequences, no tags and no genres (the tags task uses
  genres), so neither auxiliary task's signal leaks into the shared start.

The validation split holds the ReDial validation dialogues only.
"""

import functools
from typing import Optional

import tensorflow as tf

from crs_tasks import tfds_source

TITLES_PER_DOCUMENT = 16
_ASSISTANT = "[Assistant]"


@functools.lru_cache(maxsize=None)
def _examples(tfds_name: str, split: str) -> tuple:
  source = tfds_source.TfdsDataSource(tfds_name=tfds_name,
                                      splits=("train", "validation"))
  source.list_shards(split)  # Prepares the data first (sample: bundled).
  ds = source.get_dataset(split, shuffle=False)
  return tuple(ds.as_numpy_iterator())


def redial_dialogues(config: str, split: str) -> list[str]:
  """Each ReDial dialogue once, up to its last recommender turn.

  Args:
    config: `crs_redial` config (`full` or `sample`).
    split: `train` or `validation`.

  Returns:
    Dialogue texts, sorted by conversation id.
  """
  last = {}
  for ex in _examples(f"crs_redial/{config}:1.0.0", split):
    cid = ex["conversation_id"].decode()
    if cid not in last or ex["turn_index"] > last[cid][0]:
      last[cid] = (ex["turn_index"], ex["context"].decode(),
                   ex["response"].decode())
  return [
      " ".join(f"{context} {_ASSISTANT} {response}".split())
      for _, context, response in (last[c] for c in sorted(last))
  ]


def movielens_titles(config: str) -> list[str]:
  """Titles of the ML-sequences training split, unique, sorted.

  Args:
    config: `crs_movielens` sequences config (`sequences_small`, ...).

  Returns:
    E.g. `["Alien (1979)", "Heat (1995)", ...]`.
  """
  titles = set()
  for ex in _examples(f"crs_movielens/{config}:1.0.0", "train"):
    titles.update(t.decode() for t in ex["movies"])
    titles.add(ex["target"].decode())
  return sorted(titles)


def title_documents(titles: list[str],
                    per_document: int = TITLES_PER_DOCUMENT) -> list[str]:
  """`["A (1)", "B (2)", "C (3)"]`, 2 -> `["@ A (1) @, @ B (2) @", "@ C (3) @"]`."""
  return [
      ", ".join(f"@ {t} @" for t in titles[i:i + per_document])
      for i in range(0, len(titles), per_document)
  ]


def corpus(redial_config: str, movielens_config: Optional[str],
           split: str) -> dict[str, list[str]]:
  """The corpus documents by kind: `{"redial": [...], "movielens": [...]}`."""
  docs = {"redial": redial_dialogues(redial_config, split), "movielens": []}
  if split == "train" and movielens_config:
    docs["movielens"] = title_documents(movielens_titles(movielens_config))
  return docs


def corpus_dataset(
    split: str,
    shuffle_files: bool = False,
    seed=None,
    *,
    redial_config: str,
    movielens_config: Optional[str],
) -> tf.data.Dataset:
  """`seqio.FunctionDataSource` dataset_fn: `{"text": scalar string}`.

  Args:
    split: `train` or `validation`.
    shuffle_files: unused (documents in a fixed order; seqio shuffles).
    seed: unused.
    redial_config: `crs_redial` config.
    movielens_config: `crs_movielens` sequences config, or None.

  Returns:
    The documents: ReDial dialogues, then title documents.
  """
  del shuffle_files, seed
  docs = corpus(redial_config, movielens_config, split)
  return tf.data.Dataset.from_tensor_slices(
      {"text": tf.constant(docs["redial"] + docs["movielens"], tf.string)})
