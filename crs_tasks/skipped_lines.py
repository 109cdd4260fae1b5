"""Malformed lines of a data file: skipped, counted, and reported once.

The project's rule for one bad line of a data file (bytes that are not
UTF-8, bad JSON, a field that does not parse): skip it, count it, and say
so. Only a bad header or an unreadable file stops the command. ReDial's
jsonl keeps its own counters (`redial_utils.ParseSummary`, reported by
`crs_tasks.prepare`); the MovieLens CSVs (`movielens_data.read_csv`) and
the probe files (`probe_io.read_probe_jsonl`) use `SkippedLines`:

  skipped = skipped_lines.SkippedLines(path)
  for number, row in rows:
    with skipped.guard(number):  # A MalformedLine skips the row.
      ...parse row...
  skipped.report()

`report` writes one line per file to stderr (the terminal under a
command), e.g. `warning: skipped 2 malformed lines of ratings.csv: line 17:
not valid UTF-8 (byte 0xff at column 3); line 20: field 'rating': cannot
parse 'four' (...)`, and logs every skipped line.

To skip another kind of bad line: raise `MalformedLine` in the parser.
"""

import contextlib
import sys
from typing import Iterator, Optional

from absl import logging

from crs_runtime import errors

SHOWN = 5  # Skipped lines named in the summary; the log has them all.


class MalformedLine(errors.UserError, ValueError):
  """One bad line of a data file: skipped where read through SkippedLines.

  Outside a `SkippedLines.guard` it is still a one-line `UserError` (and a
  `ValueError` for older callers).
  """


class SkippedLines:
  """The malformed lines skipped while reading one file.

  Attributes:
    path: the file.
    lines: `(line number, reason)` of each skipped line, in file order.
  """

  def __init__(self, path: str):
    self.path = path
    self.lines: list[tuple[int, str]] = []

  def add(self, number: int, reason: str) -> None:
    """Counts line `number` as skipped for `reason` (and logs it)."""
    self.lines.append((number, reason))
    logging.warning("skipped malformed line %s:%d: %s", self.path, number,
                    reason)

  @contextlib.contextmanager
  def guard(self, number: int) -> Iterator[None]:
    """Skips the rest of a `with` block that raises MalformedLine."""
    try:
      yield
    except MalformedLine as e:
      self.add(number, e.what)

  def summary(self) -> Optional[str]:
    """`skipped 2 malformed lines of <path>: line 17: ...; ...`, or None."""
    if not self.lines:
      return None
    n = len(self.lines)
    shown = "; ".join(f"line {number}: {reason}"
                      for number, reason in self.lines[:SHOWN])
    more = (f"; and {n - SHOWN} more (all in the log)" if n > SHOWN else "")
    return (f"skipped {n} malformed line{'s' * (n != 1)} of {self.path}: "
            f"{shown}{more}")

  def report(self) -> None:
    """Writes the summary line to stderr (and the log), if any was skipped."""
    summary = self.summary()
    if summary:
      logging.warning("%s", summary)
      sys.stderr.write(f"warning: {summary}\n")
      sys.stderr.flush()
