"""seqio's `TfdsDataSource`, prepared before its files are listed.

seqio prepares a TFDS dataset when it first *reads* it (`tfds.load(...,
download=True)`), but `list_shards` and `num_input_examples` read the
builder's split info first, and on a fresh TFDS data dir that info is empty.
t5x asks for the shards first (`Task.get_dataset(shard_info=...)`), so a
fresh machine failed with TFDS's `KeyError: ... splits is empty` before any
data was read. This source prepares its dataset first, exactly as reading it
would: the `sample` configs from the files bundled with the package; the
others through the builders' guarded `download_and_prepare`, which raises
a `UserError` with the `prepare` command when the user's files are missing
(nothing is downloaded unless the user asked for it).
"""

import os
from typing import Optional, Sequence

import seqio

from crs_tasks.tfds_builders import sources


class TfdsDataSource(seqio.TfdsDataSource):
  """A `seqio.TfdsDataSource` whose shard listing prepares the data first."""

  def _prepare(self) -> None:
    builder = self.tfds_dataset.builder  # seqio's memoized builder.
    if os.path.exists(os.fspath(builder.data_path)) and builder.info.splits:
      return
    # What a killed earlier prepare left is removed first.
    sources.remove_incomplete(os.path.dirname(os.fspath(builder.data_path)))
    # The same builder object seqio reads with: its info holds the splits
    # once prepared.
    builder.download_and_prepare()

  def list_shards(self, split: str) -> Sequence[str]:
    self._prepare()
    return super().list_shards(split)

  def num_input_examples(self, split: str) -> Optional[int]:
    self._prepare()
    return super().num_input_examples(split)
