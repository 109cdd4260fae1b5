"""TFDS builder `crs_movielens`: MovieLens-derived auxiliary datasets.

Each config is one derived dataset from one source, named
`<dataset>_<source>`:

| config             | source                                      |
|--------------------|---------------------------------------------|
| `sequences_full`   | ml-25m (official zip, or manual_dir)        |
| `tags_full`        | ml-25m: tag genome (relevance > 0.8)+genres |
| `reviews_full`     | `<manual_dir>/reviews.csv` (no download)    |
| `sequences_small`  | ml-latest-small (official zip / manual_dir) |
| `tags_small`       | ml-latest-small: user tags + genres         |
| `sequences_sample` | bundled `crs_tasks/sample_data/movielens`   |
| `tags_sample`      | bundled sample: user tags + genres          |
| `reviews_sample`   | bundled synthetic `sample_data/reviews`     |

Each dataset is one config class, which owns its feature schema, the input
files it needs and the builder function that makes its examples:
`SequencesConfig` (`movielens_sequences`), `TagsConfig` (`movielens_tags`)
and `ReviewsConfig` (`movielens_reviews`).

Splits are `train` and `validation` (80/20 by user for sequences, by movie
for tags and reviews). All cross-example work (user histories, popularity
down-sampling, tag subsets, review sentence contexts) happens here, offline
and with fixed seeds (`SEED`), in those modules; the seqio preprocessors only
format single examples.

Downloads: the official zips are
https://files.grouplens.org/datasets/movielens/ml-25m.zip (261,978,986 bytes,
sha256 8b21cfb7...c9e6aa) and .../ml-latest-small.zip (978,202 bytes, sha256
696d65a3...9e436), recorded in `movielens_checksums.tsv` beside this file.
With `manual_dir`, put the extracted folder (`ml-25m/` or
`ml-latest-small/`) there instead; `python -m crs_tasks.prepare` does this.

Features (strings unless noted):
* sequences: `user_id` (int64), `movies` (titles, in sequence order),
  `target` (title).
* tags: `movie_id` (int64), `title`, `tags` (a random subset), `all_tags`,
  `subset_index` (int32; 0 exists for every movie).
* reviews: `title`, `context` (preceding sentences), `target` (the next
  sentence), `review_index`, `sentence_index` (int32).

To add a source: a `URLS`/`DOWNLOADS` entry and configs in `_make_configs`.
To add a dataset: a `CrsMovielensConfig` subclass with `features`,
`needed_files` and `build_splits`. Bump `VERSION` whenever the generated
examples change.
"""

import collections
import dataclasses
import os
from typing import Optional, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from crs_runtime import errors
from crs_tasks import movielens_data
from crs_tasks import movielens_reviews
from crs_tasks import movielens_sequences
from crs_tasks import movielens_tags
from crs_tasks.tfds_builders import sources

SEED = 42
SAMPLE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_data"
)
_CHECKSUMS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "movielens_checksums.tsv"
)
URLS = {
    "ml-25m": "https://files.grouplens.org/datasets/movielens/ml-25m.zip",
    "ml-latest-small": (
        "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    ),
}
DOWNLOADS = {
    "ml-25m": sources.Download(
        URLS["ml-25m"], size="262 MB (1.1 GB unpacked)",
        minutes="about 4 minutes"),
    "ml-latest-small": sources.Download(
        URLS["ml-latest-small"], size="1 MB", minutes="a few seconds"),
}
_PREPARE_FLAGS = {
    "ml-25m": "--movielens_dir=<dir>",
    "ml-latest-small": "--movielens_dir=<dir> "
                       "--movielens_source=ml-latest-small",
}


_FILE_NAMES = {
    "movies": "movies.csv", "ratings": "ratings.csv", "tags": "tags.csv",
    "genome_scores": "genome-scores.csv", "genome_tags": "genome-tags.csv",
}


def check_movielens_dir(root: str, source: str,
                        keys: Sequence[str]) -> dict[str, str]:
  """The MovieLens files under `root`, or a `UserError` naming what is missing.

  Args:
    root: the folder given as `manual_dir` / `--movielens_dir`.
    source: "ml-25m" or "ml-latest-small" (a sub-folder of that name is
      looked into).
    keys: the `find_movielens_files` keys that must be present.

  Returns:
    `find_movielens_files` of the folder.

  Raises:
    errors.UserError: `root` does not exist or lacks a file.
  """
  if not os.path.isdir(root):
    raise errors.UserError(
        "the MovieLens directory does not exist", where=root,
        fix=f"check the path given as --movielens_dir (it must hold "
        f"{source}/ or its CSV files)")
  if os.path.isdir(os.path.join(root, source)):
    root = os.path.join(root, source)
  try:
    files = movielens_data.find_movielens_files(root)
  except FileNotFoundError:
    files = {}
  missing = [_FILE_NAMES[k] for k in keys if k not in files]
  if missing:
    raise errors.UserError(
        f"the MovieLens directory lacks {', '.join(missing)} (needed for "
        f"{source})", where=root,
        fix=f"put the extracted {source} release there, pass "
        "--movielens_source=ml-latest-small for that release, or run "
        "`python -m crs_tasks.prepare --data_dir=<dir> --download` without "
        "--movielens_dir to fetch the official zip")
  return files


_CITATION = """
@article{harper2015movielens,
  title={The MovieLens Datasets: History and Context},
  author={Harper, F. Maxwell and Konstan, Joseph A.},
  journal={ACM Transactions on Interactive Intelligent Systems},
  volume={5}, number={4}, pages={19:1--19:19}, year={2015}
}
"""


_TEXT = tfds.features.Text()
Splits = dict[str, list[dict]]


@dataclasses.dataclass
class CrsMovielensConfig(tfds.core.BuilderConfig):
  """One derived dataset from one source; a subclass per dataset.

  Attributes:
    source: "ml-25m", "ml-latest-small", "sample" or "manual" (reviews).
  """

  source: str = "sample"
  # Class constants: the dataset name, and the input file an empty split
  # is blamed on.
  dataset = ""
  main_file = ""

  def features(self) -> dict[str, tfds.features.FeatureConnector]:
    """The feature schema of one example."""
    raise NotImplementedError

  def needed_files(self) -> list[str]:
    """`find_movielens_files` keys this config reads."""
    raise NotImplementedError

  def build_splits(self, files: dict[str, str],
                   stats: collections.Counter) -> Splits:
    """`{"train": [...], "validation": [...]}` from the input files."""
    raise NotImplementedError


@dataclasses.dataclass
class SequencesConfig(CrsMovielensConfig):
  """A user's liked movies -> the next one (`movielens_sequences`).

  Attributes:
    downsample_t: down-sampling threshold share of popular targets.
  """

  dataset = "sequences"
  main_file = "ratings"
  downsample_t: Optional[float] = 1e-3

  def features(self):
    return {
        "user_id": tfds.features.Scalar(dtype=np.int64),
        "movies": tfds.features.Sequence(_TEXT),
        "target": _TEXT,
    }

  def needed_files(self):
    return ["movies", "ratings"]

  def build_splits(self, files, stats):
    return movielens_sequences.build_sequence_examples(
        movielens_data.load_movies(files["movies"]), files["ratings"],
        t=self.downsample_t, seed=SEED, stats=stats)


@dataclasses.dataclass
class TagsConfig(CrsMovielensConfig):
  """A subset of a movie's tags -> the movie (`movielens_tags`).

  ml-25m reads the tag genome (relevance > 0.8), the others the users' tags.
  """

  dataset = "tags"
  main_file = "movies"

  def features(self):
    return {
        "movie_id": tfds.features.Scalar(dtype=np.int64),
        "title": _TEXT,
        "tags": tfds.features.Sequence(_TEXT),
        "all_tags": tfds.features.Sequence(_TEXT),
        "subset_index": tfds.features.Scalar(dtype=np.int32),
    }

  def needed_files(self):
    if self.source == "ml-25m":
      return ["movies", "genome_scores", "genome_tags"]
    return ["movies", "tags"]

  def build_splits(self, files, stats):
    del stats
    if "genome_scores" in files and "genome_tags" in files:
      tags = movielens_tags.load_genome_tags(
          files["genome_scores"], files["genome_tags"])
    else:
      tags = movielens_tags.load_user_tags(files["tags"])
    return movielens_tags.build_tag_examples(
        movielens_data.load_movies(files["movies"]), tags, seed=SEED)


@dataclasses.dataclass
class ReviewsConfig(CrsMovielensConfig):
  """A movie and review sentences -> the next sentence (`movielens_reviews`).

  Reads `reviews.csv` (`movielens_reviews.REVIEWS_CSV_FORMAT`), not the
  MovieLens release: bundled for `sample`, from `manual_dir` otherwise.
  """

  dataset = "reviews"
  main_file = "reviews"

  def features(self):
    return {
        "title": _TEXT,
        "context": _TEXT,
        "target": _TEXT,
        "review_index": tfds.features.Scalar(dtype=np.int32),
        "sentence_index": tfds.features.Scalar(dtype=np.int32),
    }

  def needed_files(self):
    return ["reviews"]

  def build_splits(self, files, stats):
    return movielens_reviews.build_review_examples(
        files["reviews"], seed=SEED, stats=stats)


_CONFIG_CLASSES = (SequencesConfig, TagsConfig, ReviewsConfig)


def release_files(source: str) -> list[str]:
  """`find_movielens_files` keys the configs of a MovieLens release read.

  Args:
    source: "ml-25m" or "ml-latest-small".

  Returns:
    The keys of the sequences and tags configs, sorted.
  """
  return sorted({
      key for config_class in (SequencesConfig, TagsConfig)
      for key in config_class(name="check", source=source).needed_files()})


def _make_configs():
  """The configs listed in the module docstring."""
  configs = []
  for suffix, source, t in (
      ("full", "ml-25m", 1e-3),
      ("small", "ml-latest-small", 1e-3),
      # 360 examples: a share of 1e-3 would drop even movies seen once.
      ("sample", "sample", 1e-2),
  ):
    for config_class in _CONFIG_CLASSES:
      dataset = config_class.dataset
      if config_class is ReviewsConfig:
        if suffix == "small":
          continue
        kwargs = {"source": "manual" if suffix == "full" else source}
      elif config_class is SequencesConfig:
        kwargs = {"source": source, "downsample_t": t}
      else:
        kwargs = {"source": source}
      configs.append(config_class(
          name=f"{dataset}_{suffix}",
          description=f"MovieLens {dataset} from {source}.", **kwargs))
  return configs


class CrsMovielens(tfds.core.GeneratorBasedBuilder):
  """MovieLens sequences, tags and reviews as text-ready examples."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = _make_configs()
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  sequences_full / tags_full: optional; put the extracted `ml-25m/` folder
  (or `ml-latest-small/` for the *_small configs) in manual_dir, otherwise
  the official zip is downloaded.
  reviews_full: required; put `reviews.csv` in manual_dir (format in
  crs_tasks.movielens_reviews.REVIEWS_CSV_FORMAT).
  """

  @tfds.core.utils.classproperty
  @classmethod
  def _checksums_path(cls):
    # Our own file: `checksums.tsv` beside this module is crs_redial's.
    return epath.Path(_CHECKSUMS)

  def _info(self) -> tfds.core.DatasetInfo:
    features = self.builder_config.features()
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n")[0],
        features=tfds.features.FeaturesDict(features),
        homepage="https://grouplens.org/datasets/movielens/",
        citation=_CITATION,
    )

  def download_and_prepare(self, **kwargs):  # pylint: disable=arguments-differ
    """TFDS's, after checking the inputs (no surprise download)."""
    sources.guarded_download_and_prepare(
        self, super().download_and_prepare, self.check_inputs, **kwargs)

  def check_inputs(self, download_config) -> None:
    """Raises `UserError` at once when the files are missing (no consent)."""
    config = self.builder_config
    self._manual = None
    if config.source == "sample":
      return
    name = f"crs_movielens/{config.name}"
    manual = sources.manual_dir(download_config, self.data_dir_root)
    if isinstance(config, ReviewsConfig):
      path = os.path.join(manual or "", "reviews.csv")
      if not manual or not os.path.exists(path):
        raise errors.UserError(
            f"{name} needs a reviews CSV and none was given (no review "
            "corpus is downloadable; format: "
            "crs_tasks.movielens_reviews.REVIEWS_CSV_FORMAT, columns title, "
            "review)", where=str(self.data_dir_root),
            fix=f"run `python -m crs_tasks.prepare --data_dir="
            f"{self.data_dir_root} --reviews_csv=<file>`, or use a mixture "
            "without reviews (crs_t5cr_no_reviews_v002, or the bundled "
            "crs_sample_t5cr_v002)")
      self._manual = manual
      return
    if manual:
      check_movielens_dir(manual, config.source, config.needed_files())
      self._manual = manual
    elif not sources.allowed():
      raise sources.not_prepared(
          name, self.data_dir_root, _PREPARE_FLAGS[config.source],
          f"<dir> holds {config.source}/")

  def _manual_dir(self, dl_manager) -> Optional[str]:
    """The manual dir checked by `check_inputs`, else None."""
    del dl_manager
    return getattr(self, "_manual", None)

  def _movielens_files(self, dl_manager) -> dict[str, str]:
    config = self.builder_config
    source = config.source
    if source == "sample":
      return movielens_data.find_movielens_files(
          os.path.join(SAMPLE_DIR, "movielens")
      )
    root = self._manual_dir(dl_manager)
    if root is None:
      if not sources.allowed():
        raise sources.not_prepared(
            f"crs_movielens/{config.name}", self.data_dir_root,
            _PREPARE_FLAGS[source], f"<dir> holds {source}/")
      sources.announce(DOWNLOADS[source])
      root = os.fspath(dl_manager.download_and_extract(URLS[source]))
    return check_movielens_dir(root, source, config.needed_files())

  def _reviews_files(self, dl_manager) -> dict[str, str]:
    if self.builder_config.source == "sample":
      return {"reviews": os.path.join(SAMPLE_DIR, "reviews", "reviews.csv")}
    root = self._manual_dir(dl_manager)
    path = os.path.join(root or "", "reviews.csv")
    if root is None or not os.path.exists(path):
      self.check_inputs(None)  # Raises the UserError.
    return {"reviews": path}

  def _split_generators(self, dl_manager):
    config = self.builder_config
    stats = collections.Counter()
    if isinstance(config, ReviewsConfig):
      files = self._reviews_files(dl_manager)
    else:
      files = self._movielens_files(dl_manager)
    self._input_path = files[config.main_file]
    splits = config.build_splits(files, stats)
    logging.info(
        "crs_movielens/%s: %s; %s",
        config.name,
        {k: len(v) for k, v in splits.items()},
        dict(stats),
    )
    empty = [name for name, examples in splits.items() if not examples]
    if empty:
      raise errors.UserError(
          f"crs_movielens/{config.name}: no examples in split(s) {empty} "
          f"({ {k: len(v) for k, v in splits.items()} }, {dict(stats)})",
          where=self._input_path, fix="check that the file is not empty and "
          "holds enough movies/users for an 80/20 split")
    return {
        name: self._generate_examples(examples)
        for name, examples in splits.items()
    }

  def _generate_examples(self, examples):
    for i, example in enumerate(examples):
      yield i, example
