"""TFDS builder `crs_redial`: ReDial dialogues as T5-CR text examples.

One example per recommender turn (`crs_tasks.redial_utils`): `context` (the
earlier turns, `[User] ... [Assistant] ...`, mixed case, no task prefix) and
`response` (the recommender turn), with the evaluation metadata
`conversation_id`, `turn_index` (int32), `seeker_movies`,
`recommender_movies`, `target_movies`, `target_movies_repeated` and
`context_movies` (titles as `Title (Year)`, written as in the text). The task
prefix and lower-casing are seqio preprocessors, so one prepared dataset
serves the cased and the lower-cased tasks.

Configs:

| config   | source                                                       |
|----------|--------------------------------------------------------------|
| `full`   | `manual_dir` holding `train_data.jsonl` (or                  |
|          | `train_partial.jsonl`), `test_data.jsonl` and                |
|          | `movies_with_mentions.csv`; else the official zip `URL`      |
| `sample` | bundled `crs_tasks/sample_data/redial` (no download)         |

Splits: `test` is the official test split. `validation` is carved from the
official train split by dialogue: a dialogue goes to validation when
`redial_utils.is_validation(conversationId, seed=SEED, fraction=0.1)` (md5 of
`"42:<conversationId>"`), so the split is deterministic and every turn of a
dialogue stays on one side; `train` is the rest.

Download: only when asked for (`python -m crs_tasks.prepare --download`,
see `sources`); otherwise a `full` dataset that is not prepared raises a
`UserError` with the prepare command at once, and a `manual_dir` that lacks a
file names it. `URL` is recorded in `checksums.tsv` beside this module
without a size and hash, because it could not be fetched where this was
written. Run once, with network, `tfds build
crs_tasks/tfds_builders/redial.py --config=full --register_checksums` to
record them (or use `manual_dir`, which needs no checksum). An empty train or
test file (or one without a valid dialogue) is a `UserError` naming it.

Preparing the full data (writes `<data_dir>/crs_redial/full/1.0.0`; point
seqio at the same dir with `seqio.set_tfds_data_dir_override` or
`TFDS_DATA_DIR`):

  python -c "from crs_tasks.tfds_builders import redial; \
      print(redial.prepare_redial('~/tensorflow_datasets', \
      manual_dir='../shared/data/redial'))"

or `python -m crs_tasks.prepare --redial_dir=...`. The `sample` config needs
nothing: seqio prepares it on first use.

Malformed jsonl lines are skipped, counted and logged with `file:line`
(`redial_utils.read_dialogues`).

Statistics (examples per split, dialogues in brackets; asserted in
tests/crs_tasks/redial_tasks_test.py and redial_real_data_test.py):

| data                                  | train       | valid.   | test     |
|---------------------------------------|-------------|----------|----------|
| `sample` (200 train + 50 test dial.)  | 1,191 (188) | 72 (12)  | 284 (50) |
| ../shared/data (1,401 of the 10,006   | 8,022       | 759      | 7,978    |
| train dialogues; the full test split) | (1,281)     | (120)    | (1,342)  |

Of the 7,978 test examples, 3,671 mention a movie in the target turn and 424
repeat a movie mentioned earlier in the dialogue; 891 test dialogues start
with the recommender (examples with an empty context).

To change the examples: edit `redial_utils` and bump `VERSION` with a
release note.
"""

import collections
import dataclasses
import os
from typing import Optional

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from crs_runtime import errors
from crs_tasks import redial_utils
from crs_tasks.tfds_builders import sources

SEED = 42
VALIDATION_FRACTION = 0.1
URL = "https://github.com/ReDialData/website/raw/data/redial_dataset.zip"
SAMPLE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "sample_data",
    "redial",
)
CHECKSUMS_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "checksums.tsv"
)
DOWNLOAD = sources.Download(
    URL, size="about 6 MB (33 MB unpacked; not pinned yet)",
    minutes="under a minute")
TRAIN_FILES = ("train_data.jsonl", "train_partial.jsonl")
# How messages name the train file: either is accepted.
TRAIN_FILES_TEXT = " or ".join(TRAIN_FILES)
TEST_FILE = "test_data.jsonl"
MOVIES_FILE = "movies_with_mentions.csv"

_CITATION = """
@inproceedings{li2018conversational,
  title={Towards Deep Conversational Recommendations},
  author={Li, Raymond and Ebrahimi Kahou, Samira and Schulz, Hannes and
          Michalski, Vincent and Charlin, Laurent and Pal, Chris},
  booktitle={Advances in Neural Information Processing Systems 31},
  year={2018}
}
"""


@dataclasses.dataclass
class CrsRedialConfig(tfds.core.BuilderConfig):
  """Where the ReDial files come from.

  Attributes:
    source: "download" (manual_dir if it has the files, else `URL`) or
      "sample" (the bundled files).
  """

  source: str = "sample"


def find_redial_files(root: str) -> Optional[dict[str, str]]:
  """The ReDial files under `root` (or one folder below it), or None.

  Args:
    root: a folder holding the extracted release.

  Returns:
    `{"train": ..., "test": ..., "movies": ...}` paths, or None when any is
    missing. `train_partial.jsonl` is accepted for `train_data.jsonl`.
  """
  candidates = [root]
  if os.path.isdir(root):
    candidates += [
        os.path.join(root, d)
        for d in sorted(os.listdir(root))
        if os.path.isdir(os.path.join(root, d))
    ]
  for folder in candidates:
    train = [os.path.join(folder, n) for n in TRAIN_FILES]
    train = [p for p in train if os.path.exists(p)]
    test = os.path.join(folder, TEST_FILE)
    movies = os.path.join(folder, MOVIES_FILE)
    if train and os.path.exists(test) and os.path.exists(movies):
      return {"train": train[0], "test": test, "movies": movies}
  return None


def missing_redial_files(root: str) -> list[str]:
  """Which of the ReDial files `root` lacks (empty when all are there).

  Args:
    root: the folder given as `manual_dir` / `--redial_dir`.

  Returns:
    File names, e.g. `["movies_with_mentions.csv"]`; `[root]` itself when
    it is not a directory.
  """
  if not os.path.isdir(root):
    return [root]
  names = set()
  for folder, _, files in os.walk(root):
    if folder.count(os.sep) - root.rstrip(os.sep).count(os.sep) <= 1:
      names.update(files)
  missing = []
  if not names.intersection(TRAIN_FILES):
    missing.append(TRAIN_FILES_TEXT)
  missing += [n for n in (TEST_FILE, MOVIES_FILE) if n not in names]
  return missing


def check_redial_dir(root: str) -> dict[str, str]:
  """The ReDial files under `root`, or a `UserError` naming what is missing.

  Args:
    root: the folder given as `manual_dir` / `--redial_dir`.

  Returns:
    `find_redial_files(root)`.

  Raises:
    errors.UserError: `root` does not exist or lacks a file.
  """
  files = find_redial_files(root)
  if files:
    return files
  missing = missing_redial_files(root)
  if missing == [root]:
    raise errors.UserError(
        "the ReDial directory does not exist", where=root,
        fix="check the path given as --redial_dir (it must hold "
        f"{TRAIN_FILES_TEXT}, {TEST_FILE} and {MOVIES_FILE})")
  raise errors.UserError(
      f"the ReDial directory lacks {', '.join(missing)}", where=root,
      fix=f"put the extracted release there ({TRAIN_FILES_TEXT}, {TEST_FILE}, "
      f"{MOVIES_FILE}), or run `python -m crs_tasks.prepare --data_dir=<dir> "
      "--download` without --redial_dir to fetch the official zip")


def build_splits(
    files: dict[str, str],
    *,
    seed: int = SEED,
    fraction: float = VALIDATION_FRACTION,
    summary: Optional[redial_utils.ParseSummary] = None,
) -> dict[str, list[redial_utils.Example]]:
  """Examples of the train/validation/test splits from the ReDial files.

  Args:
    files: output of `find_redial_files`.
    seed: seed of the validation assignment.
    fraction: share of train dialogues that go to validation.
    summary: counts parse quirks into it when given.

  Returns:
    `{"train": [...], "validation": [...], "test": [...]}`.
  """
  summary = summary if summary is not None else redial_utils.ParseSummary()
  titles = redial_utils.load_movie_titles(files["movies"])
  splits = collections.defaultdict(list)
  for dialogue in _progress(
      redial_utils.read_dialogues(files["train"], summary=summary),
      files["train"]):
    split = (
        "validation"
        if redial_utils.is_validation(
            str(dialogue["conversationId"]), seed=seed, fraction=fraction
        )
        else "train"
    )
    splits[split].extend(
        redial_utils.dialogue_to_examples(
            dialogue, movie_titles=titles, summary=summary
        )
    )
  for dialogue in _progress(
      redial_utils.read_dialogues(files["test"], summary=summary),
      files["test"]):
    splits["test"].extend(
        redial_utils.dialogue_to_examples(
            dialogue, movie_titles=titles, summary=summary
        )
    )
  for split, path in (("train", files["train"]), ("test", files["test"])):
    if not splits[split]:
      raise errors.UserError(
          f"no {split} examples: the file holds no valid dialogue "
          f"({summary.malformed_lines} malformed line(s) skipped)",
          where=path, fix="check that the file is the ReDial release")
  if not splits["validation"]:
    raise errors.UserError(
        f"no validation examples: the validation split is {fraction:.0%} of "
        f"the train dialogues and none of the {summary.dialogues} fell there",
        where=files["train"], fix="give a train file with more dialogues")
  return {k: splits[k] for k in ("train", "validation", "test")}


def _progress(items, path: str):
  """A tqdm bar (shown after 2 s) over the dialogues of one jsonl file."""
  import tqdm  # pylint: disable=g-import-not-at-top

  with open(path, "rb") as f:
    total = sum(1 for _ in f)
  return tqdm.tqdm(items, total=total, delay=2, unit=" dialogues",
                   desc=f"parsing {os.path.basename(path)}")


class CrsRedial(tfds.core.GeneratorBasedBuilder):
  """ReDial recommender turns with their dialogue history and movie lists."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: one example per recommender turn.",
  }
  BUILDER_CONFIGS = [
      CrsRedialConfig(
          name="full",
          description="The ReDial release (manual_dir or official zip).",
          source="download",
      ),
      CrsRedialConfig(
          name="sample",
          description="Bundled subset: 200 train and 50 test dialogues.",
          source="sample",
      ),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  For `full`: put the extracted ReDial release in manual_dir:
  `train_data.jsonl` (or `train_partial.jsonl`), `test_data.jsonl` and
  `movies_with_mentions.csv`. Or download the official zip
  (https://github.com/ReDialData/website/raw/data/redial_dataset.zip) with
  `python -m crs_tasks.prepare --data_dir=<dir> --download`: nothing is
  downloaded unless asked for (`sources.allowed()`).
  """

  @tfds.core.utils.classproperty
  @classmethod
  def _checksums_path(cls):
    # Explicit path: TFDS's default lookup needs `importlib_resources`.
    return epath.Path(CHECKSUMS_PATH)

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    features = {
        "context": text,
        "response": text,
        "conversation_id": text,
        "turn_index": tfds.features.Scalar(dtype=np.int32),
    }
    features.update({k: tfds.features.Sequence(text) for k in
                     redial_utils.TITLE_FEATURES})
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n")[0],
        features=tfds.features.FeaturesDict(features),
        homepage="https://redialdata.github.io/website/",
        citation=_CITATION,
    )

  def download_and_prepare(self, **kwargs):  # pylint: disable=arguments-differ
    """TFDS's, after checking the inputs (no surprise download)."""
    sources.guarded_download_and_prepare(
        self, super().download_and_prepare, self.check_inputs, **kwargs)

  def check_inputs(self, download_config) -> None:
    """Raises `UserError` at once when `full` has neither files nor consent."""
    self._manual = None
    if self.builder_config.source == "sample":
      return
    manual = sources.manual_dir(download_config, self.data_dir_root)
    if manual:
      check_redial_dir(manual)
      self._manual = manual
    elif not sources.allowed():
      raise sources.not_prepared(
          f"crs_redial/{self.builder_config.name}", self.data_dir_root,
          "--redial_dir=<dir>",
          f"<dir> holds {TRAIN_FILES_TEXT}, {TEST_FILE} and {MOVIES_FILE}")

  def _files(self, dl_manager) -> dict[str, str]:
    if self.builder_config.source == "sample":
      return find_redial_files(SAMPLE_DIR)
    manual = getattr(self, "_manual", None)
    if manual:
      return check_redial_dir(manual)
    if not sources.allowed():
      raise sources.not_prepared(
          f"crs_redial/{self.builder_config.name}", self.data_dir_root,
          "--redial_dir=<dir>",
          f"<dir> holds {TRAIN_FILES_TEXT}, {TEST_FILE} and {MOVIES_FILE}")
    sources.announce(DOWNLOAD)
    extracted = os.fspath(dl_manager.download_and_extract(URL))
    files = find_redial_files(extracted)
    if files is None:
      raise FileNotFoundError(f"ReDial files not found in {extracted}")
    return files

  def _split_generators(self, dl_manager):
    files = self._files(dl_manager)
    summary = redial_utils.ParseSummary()
    self.parse_summary = summary
    splits = build_splits(files, summary=summary)
    logging.info(
        "crs_redial/%s from %s: %s; %s",
        self.builder_config.name,
        files,
        {k: len(v) for k, v in splits.items()},
        summary.counts(),
    )
    for location in summary.malformed_locations:
      logging.warning("crs_redial: skipped %s", location)
    return {
        name: self._generate_examples(examples)
        for name, examples in splits.items()
    }

  def _generate_examples(self, examples):
    for example in examples:
      key = f"{example['conversation_id']}_{example['turn_index']}"
      yield key, example


def prepare_redial(
    data_dir: str, manual_dir: Optional[str] = None, config: str = "full"
) -> dict[str, int]:
  """Builds `crs_redial/<config>` into `data_dir`.

  Args:
    data_dir: TFDS data dir to write (what seqio / `TFDS_DATA_DIR` reads).
    manual_dir: folder with the ReDial files (see `find_redial_files`); for
      `full` without it, the official zip is downloaded only inside
      `sources.allow_downloads()` (else a `UserError`).
    config: "full" or "sample".

  Returns:
    `{split: num_examples}` of the prepared dataset.
  """
  data_dir = os.path.expanduser(data_dir)
  if manual_dir:
    manual_dir = os.path.expanduser(manual_dir)
  builder = tfds.builder(f"crs_redial/{config}", data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  return {k: v.num_examples for k, v in builder.info.splits.items()}
