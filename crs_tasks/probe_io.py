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
  """A bad line in a probe file: one `error:` line in a command."""


def read_probe_jsonl(path: str,
                     required: Sequence[str] = PROBE_FIELDS) -> list[dict]:
  """Reads a probe file, checking every line.

  Args:
    path: `<probe>.jsonl`.
    required: fields every line must have as strings.

  Returns:
    The examples, in file order (blank lines skipped).

  Raises:
    FileNotFoundError: with the command that builds the file.
    ProbeFileError: (a `UserError` and a `ValueError`: one line, exit 2, in
      a command) naming file, line and field on bad JSON, a line that is
      not valid UTF-8, or a missing / non-string required field. A bad line
      stops the read rather than being skipped: a probe set that silently
      lost pairs would no longer pair with other runs' results.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"probe file {path} not found; build it with `python -m "
        "crs_tasks.build_probes --movielens_dir=... --build_dir=DIR` and set "
        f"${PROBES_DIR_ENV}=DIR")
  out = []
  with open(path, "rb") as f:
    for line_no, raw in enumerate(f, 1):
      if not raw.strip():
        continue
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ProbeFileError(
            f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
            f"{e.start + 1})", where=f"{path}:{line_no}",
            fix=_REBUILD) from None
      try:
        ex = json.loads(line)
      except json.JSONDecodeError as e:
        raise ProbeFileError(f"invalid JSON ({e})", where=f"{path}:{line_no}",
                             fix=_REBUILD) from None
      if not isinstance(ex, dict):
        raise ProbeFileError("not a JSON object", where=f"{path}:{line_no}",
                             fix=_REBUILD)
      for field in required:
        if not isinstance(ex.get(field), str):
          raise ProbeFileError(
              f"field {field!r}: missing or not a string",
              where=f"{path}:{line_no}", fix=_REBUILD)
      out.append(ex)
  return out


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
