"""Where a builder's input files come from, checked before TFDS does anything.

The `full`/`small` configs read the user's files (`manual_dir`) and download
the official zips only when the user asked for it: `python -m
crs_tasks.prepare --download` (or `allow_downloads()` in code, or the
environment variable `CRS_ALLOW_DOWNLOADS=1`). Anything else that needs a
config that is not prepared yet (seqio, `train.main`, t5x, `inspect_task`)
gets a `UserError` at once, with the exact `prepare` command, instead of a
silent download that fails minutes later without network.

`guarded_download_and_prepare` is the one place both builders call: it checks
the inputs first (`check`), and if TFDS fails after all it removes the empty
directories that the attempt created, so a failed prepare leaves the TFDS
data dir as it found it. When nothing is downloaded (the bundled sample, or
the user's files), the terminal gets one line of ours, `Preparing <config>
in <dir> ...`; TFDS's own "Downloading and preparing dataset" lines go to
the log and its progress bars are off (all of it stays on the terminal with
`--verbosity=1` or `CRS_LOGS=stderr`, and when an official zip is
downloaded).
"""

import contextlib
import dataclasses
import glob
import io
import os
import shutil
import sys
from typing import Callable, Iterator, Optional

from absl import logging

from crs_runtime import cli
from crs_runtime import errors

ENV_ALLOW = "CRS_ALLOW_DOWNLOADS"
_allowed = [False]


@dataclasses.dataclass(frozen=True)
class Download:
  """One official archive: what it is, its size and a time estimate.

  Attributes:
    url: the official URL (pinned in a checksums file beside the builders).
    size: human-readable size, stated before the download starts.
    minutes: rough time at 10 Mbit/s, stated with the size.
  """

  url: str
  size: str
  minutes: str


def allowed() -> bool:
  """Whether builders may download official archives now."""
  return _allowed[0] or os.environ.get(ENV_ALLOW, "") not in ("", "0")


@contextlib.contextmanager
def allow_downloads(enable: bool = True) -> Iterator[None]:
  """Within the block, builders may download (`prepare --download`)."""
  previous = _allowed[0]
  _allowed[0] = enable
  try:
    yield
  finally:
    _allowed[0] = previous


def manual_dir(download_config, data_dir_root: str) -> Optional[str]:
  """The manual dir TFDS would use: the given one, else `downloads/manual`.

  Args:
    download_config: a `tfds.download.DownloadConfig` or None.
    data_dir_root: the TFDS data dir.

  Returns:
    The path, or None when none was given and the default is absent/empty.
  """
  given = getattr(download_config, "manual_dir", None)
  if given:
    return os.path.expanduser(os.fspath(given))
  default = os.path.join(os.fspath(data_dir_root), "downloads", "manual")
  if os.path.isdir(default) and os.listdir(default):
    return default
  return None


def announce(download: Download) -> None:
  """Prints what is about to be downloaded, before it starts."""
  print(f"Downloading {download.url} ({describe(download)}) ...",
        flush=True)


def describe(download: Download) -> str:
  """`"262 MB; expected time at 10 Mbit/s: 4 minutes"`."""
  return f"{download.size}; expected time at 10 Mbit/s: {download.minutes}"


def not_prepared(name: str, data_dir_root: str, prepare_flags: str,
                 needs: str) -> errors.UserError:
  """The error for a config that is neither prepared nor allowed to download.

  Args:
    name: e.g. `crs_redial/full`.
    data_dir_root: the TFDS data dir that was searched.
    prepare_flags: the `prepare` flags that build it, e.g.
      `--redial_dir=<dir>`.
    needs: which files the flags' folder must hold.

  Returns:
    The `UserError` to raise.
  """
  command = (f"python -m crs_tasks.prepare --data_dir={data_dir_root} "
             f"{prepare_flags}")
  return errors.UserError(
      f"{name} is not prepared in this TFDS data dir (nothing is downloaded "
      f"unless you ask for it); run prepare first",
      where=str(data_dir_root),
      fix=f"run `{command}` ({needs}), or `--download` instead of that "
      "folder to fetch the official zip; then rerun with the environment "
      f"variable TFDS_DATA_DIR={data_dir_root}",
  )


def _missing_dirs(path: str, stop: str) -> list[str]:
  """`path` and its parents up to (excluding) `stop` that do not exist."""
  out = []
  path, stop = os.path.abspath(path), os.path.abspath(stop)
  while path != stop and not os.path.exists(path):
    out.append(path)
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return out


def guarded_download_and_prepare(
    builder, prepare: Callable[..., None], check: Callable[[object], None],
    **kwargs,
) -> None:
  """`prepare(**kwargs)` (TFDS's), after `check`, leaving no empty dirs.

  Args:
    builder: the `tfds.core.DatasetBuilder`.
    prepare: its parent class's bound `download_and_prepare`.
    check: raises `UserError` when the inputs are missing; gets the
      `download_config` (or None). Only called when not yet prepared.
    **kwargs: passed to `prepare`.
  """
  data_path = os.fspath(builder.data_path)
  if os.path.exists(data_path):
    prepare(**kwargs)
    return
  check(kwargs.get("download_config"))
  root = os.fspath(builder.data_dir_root)
  created = _missing_dirs(data_path, root)
  downloads = os.path.join(root, "downloads")
  if not os.path.exists(downloads):
    created.append(downloads)
  downloads_possible = allowed() and not manual_dir(
      kwargs.get("download_config"), root)
  try:
    if downloads_possible or cli.logs_on_terminal():
      prepare(**kwargs)
    else:
      with quiet_tfds(_config_name(builder), root):
        prepare(**kwargs)
  except BaseException:
    for path in sorted(created, key=len, reverse=True):
      with contextlib.suppress(OSError):
        _remove_empty_tree(path)
    raise


def _remove_empty_tree(path: str) -> None:
  """Removes `path` if it holds only empty dirs and TFDS's `.config/` notes."""
  if not os.path.isdir(path):
    return
  for dirpath, _, filenames in os.walk(path):
    if filenames and ".config" not in dirpath.split(os.sep):
      return
  for dirpath, _, filenames in sorted(os.walk(path), key=lambda w: -len(w[0])):
    for name in filenames:
      os.remove(os.path.join(dirpath, name))
    os.rmdir(dirpath)


def remove_incomplete(config_dir: str) -> list[str]:
  """Deletes the TFDS `incomplete.*` folders a killed prepare left.

  TFDS writes a config to `<data_dir>/<builder>/<config>/incomplete.*` and
  renames it when complete, so a kill -9 leaves that folder behind; nothing
  reads it, but it takes space and looks like data. Called before a config
  is prepared again (`crs_tasks.prepare`, `crs_tasks.tfds_source`).

  Args:
    config_dir: `<data_dir>/<builder>/<config>`.

  Returns:
    The folders removed.
  """
  removed = []
  for path in sorted(glob.glob(os.path.join(config_dir, "incomplete.*"))):
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
      removed.append(path)
      print(f"note: removed {path}, left by an interrupted prepare",
            flush=True)
  return removed


def _config_name(builder) -> str:
  config = getattr(builder, "builder_config", None)
  return f"{builder.name}/{config.name}" if config else builder.name


@contextlib.contextmanager
def quiet_tfds(name: str, data_dir_root: str) -> Iterator[None]:
  """Our one line on the terminal; TFDS's prints to the log, no TFDS bars.

  Args:
    name: the config being prepared, e.g. `crs_redial/sample`.
    data_dir_root: the TFDS data dir it is written to.

  Yields:
    Nothing; TFDS's `download_and_prepare` runs inside.
  """
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top

  print(f"Preparing {name} in {data_dir_root} (first use; nothing is "
        "downloaded) ...", flush=True)
  shown = tqdm_utils._active  # pylint: disable=protected-access
  printed = io.StringIO()
  tqdm_utils.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(printed):
      yield
  finally:
    tqdm_utils.display_progress_bar(shown)
    for line in printed.getvalue().splitlines():
      if line.strip():
        logging.info("TFDS: %s", line)
    sys.stdout.flush()
