r"""Throughput of the ReDial data path on the whole official test split.

  python bench/data_redial.py [--redial_dir=../shared/data/redial]

Measures (1) raw jsonl -> examples (`redial_utils.load_examples`), (2)
preparing `crs_redial/full` from the files (TFDS, all three splits, into a
temporary data dir) and (3) reading the `crs_redial_v002` test split through
seqio with tokenization. The issue requires the whole test split to convert
in under 30 s; the script exits non-zero when (1) + (3) exceed that.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import seqio

from crs_tasks import redial  # pylint: disable=unused-import
from crs_tasks import redial_utils
from crs_tasks.tfds_builders import redial as redial_builder

BUDGET_S = 30.0


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--redial_dir", default="../shared/data/redial")
  args = parser.parse_args(argv)
  files = redial_builder.find_redial_files(args.redial_dir)
  if files is None:
    sys.exit(f"no ReDial files in {args.redial_dir}")

  start = time.perf_counter()
  titles = redial_utils.load_movie_titles(files["movies"])
  summary = redial_utils.ParseSummary()
  examples = redial_utils.load_examples(
      files["test"], movie_titles=titles, summary=summary
  )
  parse_s = time.perf_counter() - start
  print(
      f"parse: {len(examples)} examples from {summary.dialogues} dialogues "
      f"in {parse_s:.2f} s ({len(examples) / parse_s:,.0f} examples/s)"
  )
  print(f"parse summary: {summary.counts()}")

  with tempfile.TemporaryDirectory() as data_dir:
    start = time.perf_counter()
    sizes = redial_builder.prepare_redial(
        data_dir, manual_dir=args.redial_dir, config="full"
    )
    prepare_s = time.perf_counter() - start
    print(f"prepare crs_redial/full: {sizes} in {prepare_s:.2f} s")

    seqio.set_tfds_data_dir_override(data_dir)
    task = seqio.get_mixture_or_task("crs_redial_v002")
    task.source.tfds_dataset.override_data_dir(data_dir)
    start = time.perf_counter()
    ds = task.get_dataset(
        sequence_length={"inputs": 512, "targets": 128},
        split="test",
        shuffle=False,
    )
    n = inputs_tokens = 0
    for ex in ds.as_numpy_iterator():
      n += 1
      inputs_tokens += len(ex["inputs"])
    seqio_s = time.perf_counter() - start
    print(
        f"seqio crs_redial_v002 test (tokenized): {n} examples in "
        f"{seqio_s:.2f} s ({n / seqio_s:,.0f} examples/s, "
        f"{inputs_tokens / n:.0f} input tokens/example after trimming)"
    )

  total = parse_s + seqio_s
  print(f"test split raw -> tokenized: {total:.2f} s (budget {BUDGET_S} s)")
  if total > BUDGET_S:
    sys.exit(1)


if __name__ == "__main__":
  main()
