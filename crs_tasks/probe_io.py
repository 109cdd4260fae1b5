"""The probe-pair JSONL format: its names, fields and one checked reader.

Written by `eval.probes.builders.write_jsonl`, read by the probe seqio Tasks
(`crs_tasks/probes.py`) and by `eval.probes.probe_lib`. One JSON object per
line; every field is a string.
"""

import json
import os
from typing import Sequence

PROBE_NAMES = ("recommendation", "attribute", "description", "combination")
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
    ValueError: naming file, line and field on bad JSON or a missing /
      non-string required field.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"probe file {path} not found; build it with `python -m "
        "eval.probes.main --movielens_dir=... --build_dir=DIR` and set "
        f"${PROBES_DIR_ENV}=DIR")
  out = []
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        ex = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{line_no}: invalid JSON ({e})") from None
      if not isinstance(ex, dict):
        raise ValueError(f"{path}:{line_no}: not a JSON object")
      for field in required:
        if not isinstance(ex.get(field), str):
          raise ValueError(
              f"{path}:{line_no}: field {field!r}: missing or not a string")
      out.append(ex)
  return out
