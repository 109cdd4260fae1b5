"""JSONL files: the probe-pair format (names, fields, one checked reader)
and the project's one JSONL writer (atomic).

Probe files are written by `crs_tasks.probe_builders.build_probe_files`, read
by the probe seqio Tasks (`crs_tasks/probes.py`) and by
`eval.probes.probe_lib`. One JSON object per line; every field is a string.
`write_jsonl` also writes predictions (`train.infer`, `eval.evaluation`).
No TensorFlow here.
"""

import json
import os
from typing import Any, Iterable, Mapping, Sequence

from crs_runtime import errors
from crs_tasks import skipped_lines

PROBE_NAMES = ("recommendation", "attribute", "description", "combination")
# In-format probes: the same pairs as a dialogue probe, read in the format of
# the MovieLens task that teaches the relation (`probe_builders.in_format`):
# in-format name -> the dialogue-format probe whose pairs it rereads.
IN_FORMAT_PROBES = {
    "recommendation_in_format": "recommendation",
    "attribute_in_format": "attribute",
}
ALL_PROBE_NAMES = PROBE_NAMES + tuple(IN_FORMAT_PROBES)
PROBE_FIELDS = (
    "probe",
    "pair_id",
    "inputs",
    "targets",
    "negative_targets",
    "query_movie",
    "positive_movie",
    "negative_movie",
    "tag",
)
PROBES_DIR_ENV = "CRS_PROBES_DIR"


_REBUILD = ("rebuild the probe files with `python -m "
            "crs_tasks.build_probes --movielens_dir=... --build_dir=DIR`")


class ProbeFileError(errors.UserError, ValueError):
  """A probe file that cannot be read: one `error:` line in a command."""


def read_probe_jsonl(path: str,
                     required: Sequence[str] = PROBE_FIELDS) -> list[dict]:
  """Reads a probe file, skipping and counting its malformed lines.

  A line with bad JSON, bytes that are not valid UTF-8, or a missing /
  non-string required field is skipped; the skipped lines are reported in
  one line naming `file:line` and the reason (`crs_tasks.skipped_lines`).
  The same file always gives the same pairs, so runs stay comparable.

  Args:
    path: `<probe>.jsonl`.
    required: fields every line must have as strings.

  Returns:
    The valid examples, in file order (blank lines skipped).

  Raises:
    FileNotFoundError: with the command that builds the file.
    ProbeFileError: (a `UserError` and a `ValueError`: one line, exit 2, in
      a command) when no line of the file is valid.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"probe file {path} not found; build it with `python -m "
        "crs_tasks.build_probes --movielens_dir=... --build_dir=DIR` and set "
        f"${PROBES_DIR_ENV}=DIR")
  out = []
  skipped = skipped_lines.SkippedLines(path)
  with open(path, "rb") as f:
    for line_no, raw in enumerate(f, 1):
      if raw.strip():
        with skipped.guard(line_no):
          out.append(_probe_example(raw, required, f"{path}:{line_no}"))
  if skipped.lines and not out:
    raise ProbeFileError(
        f"no valid line ({skipped.summary()})", where=path, fix=_REBUILD)
  skipped.report()
  return out


def _probe_example(raw: bytes, required: Sequence[str],
                   where: str) -> dict:
  """One probe line as a dict; raises MalformedLine naming the reason."""
  try:
    line = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise skipped_lines.MalformedLine(errors.utf8_error(raw, e),
                                      where=where) from None
  try:
    ex = json.loads(line)
  except json.JSONDecodeError as e:
    raise skipped_lines.MalformedLine(f"invalid JSON ({e})",
                                      where=where) from None
  if not isinstance(ex, dict):
    raise skipped_lines.MalformedLine("not a JSON object", where=where)
  for field in required:
    if not isinstance(ex.get(field), str):
      raise skipped_lines.MalformedLine(
          f"field {field!r}: missing or not a string", where=where)
  return ex


def write_jsonl(path: str, rows: Iterable[Mapping[str, Any]], *,
                sort_keys: bool = False) -> str:
  """Writes one JSON object per line (UTF-8), atomically.

  The lines go to `path.tmp`, renamed over `path` once complete, so a
  reader never sees half a file; the folder is created.

  Args:
    path: the output file.
    rows: JSON-serializable mappings.
    sort_keys: sort each object's keys.

  Returns:
    `path`.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n")
  os.replace(path + ".tmp", path)
  return path
