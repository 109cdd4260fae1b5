"""Output features and the default vocabulary of every crs_tasks Task.

The default vocabulary is the real T5 SentencePiece model ("cc_all.32000",
Apache-2.0) bundled as package data, so nothing needs `gs://` by default. To
use another vocabulary (for example the original
`gs://t5-data/vocabs/cc_all.32000/sentencepiece.model`), register tasks with
`get_output_features(path)` or override the path in gin.
"""

import os

import seqio

DEFAULT_VOCAB_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "data", "spiece.model"
)


def get_vocabulary(
    path: str = DEFAULT_VOCAB_PATH,
) -> seqio.SentencePieceVocabulary:
  """Returns the SentencePiece vocabulary at `path` (T5's by default).

  Args:
    path: a local or `gs://` SentencePiece model file.

  Returns:
    A `seqio.SentencePieceVocabulary` with T5's 100 extra ids.
  """
  return seqio.SentencePieceVocabulary(path, extra_ids=100)


def get_output_features(path: str = DEFAULT_VOCAB_PATH) -> dict:
  """Returns `inputs`/`targets` features on the vocabulary at `path`.

  Args:
    path: SentencePiece model file.

  Returns:
    Mapping of feature name to `seqio.Feature`, both with EOS appended.
  """
  vocab = get_vocabulary(path)
  return {
      "inputs": seqio.Feature(vocabulary=vocab, add_eos=True),
      "targets": seqio.Feature(vocabulary=vocab, add_eos=True),
  }


DEFAULT_OUTPUT_FEATURES = get_output_features()
