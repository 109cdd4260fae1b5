"""Gin flags shared by the entry points (t5x-style `--gin.NAME=VALUE`).

`python -m train.main --gin_file=runs/finetune.gin --gin.MODEL_DIR="'/tmp/m'"`
works as in t5x: `--gin.X=V` is rewritten to `--gin_bindings=X=V` before absl
parses the flags. Gin files are searched in the working directory, the
repository root and the repository's `gin/` directory, so includes such as
`include 'models/t5_1_1_tiny.gin'` work from anywhere.
"""

import logging
import os
from typing import Optional, Sequence

from absl import flags
import gin
import seqio

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_DIR = os.path.join(REPO_ROOT, "gin")

flags.DEFINE_multi_string("gin_file", [], "Gin files to parse, in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings.")
flags.DEFINE_multi_string(
    "gin_search_paths", [], "Extra directories to search for gin files.")
flags.DEFINE_multi_string(
    "seqio_additional_cache_dirs", [],
    "Directories holding seqio caches (for USE_CACHED_TASKS = True).")


class _QuietSearchFilter(logging.Filter):
  """Drops gin's "Path not found" log for each search path it tries.

  A file found on no search path still raises an error naming it.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Path not found")


def rewrite_gin_args(argv: Sequence[str]) -> list[str]:
  """['--gin.A=1'] -> ['--gin_bindings=A=1'] (other arguments unchanged)."""
  out = []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      out.append(f"--gin_bindings={name} = {value}")
    else:
      out.append(arg)
  return out


def flags_parser(argv: Sequence[str]) -> list[str]:
  """absl `flags_parser` that understands `--gin.NAME=VALUE`."""
  return flags.FLAGS(rewrite_gin_args(argv))


def parse_gin(
    gin_files: Sequence[str],
    gin_bindings: Sequence[str] = (),
    search_paths: Optional[Sequence[str]] = None,
    finalize: bool = True,
) -> None:
  """Parses gin files and bindings with the repository's search paths.

  Args:
    gin_files: files (absolute, or relative to a search path).
    gin_bindings: bindings applied after the files, e.g. `MODEL_DIR='/tmp'`.
    search_paths: extra search paths, searched first.
    finalize: lock the config after parsing.
  """
  root_logger = logging.getLogger()
  if not any(isinstance(f, _QuietSearchFilter) for f in root_logger.filters):
    root_logger.addFilter(_QuietSearchFilter())
  for path in [GIN_DIR, REPO_ROOT, os.getcwd(), *(search_paths or ())][::-1]:
    gin.add_config_file_search_path(path)
  gin.parse_config_files_and_bindings(
      list(gin_files), list(gin_bindings), finalize_config=finalize
  )


def parse_from_flags() -> None:
  """`parse_gin` with the values of the absl flags (and seqio cache dirs)."""
  if flags.FLAGS.seqio_additional_cache_dirs:
    seqio.add_global_cache_dirs(flags.FLAGS.seqio_additional_cache_dirs)
  parse_gin(
      flags.FLAGS.gin_file,
      flags.FLAGS.gin_bindings,
      flags.FLAGS.gin_search_paths,
  )
