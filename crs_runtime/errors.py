"""The one exception type for a user's mistake.

Every entry point (`train.main`, `train.infer`, `eval.main`, `crs_chat.main`,
`eval.report`, `eval.probes.main`, `crs_tasks.prepare`,
`crs_tasks.inspect_task`, `crs_tasks.build_probes`) prints a `UserError` as one line and exits with code 2, without a traceback
(unless asked for one). Anything else is a programming error and still
raises.

A message says what is wrong, where (file:line:field, gin macro, step) and
what to do:

  raise errors.UserError(
      "rating 'four' is not a number",
      where="ratings.csv:12:rating",
      fix="fix or delete that line")
  -> "ratings.csv:12:rating: rating 'four' is not a number. Fix: fix or
     delete that line"
"""

import difflib
from typing import Any, Iterable, Iterator, Optional


class UserError(Exception):
  """A mistake the user can fix: shown as one line, exit code 2.

  Attributes:
    what: what is wrong.
    where: file:line:field, a gin macro, a step, or None.
    fix: what to do about it, or None.
  """

  def __init__(self, what: str, *, where: Optional[str] = None,
               fix: Optional[str] = None):
    self.what = what
    self.where = where
    self.fix = fix
    super().__init__(format_message(what, where=where, fix=fix))


def format_message(what: str, *, where: Optional[str] = None,
                   fix: Optional[str] = None) -> str:
  """`where: what. Fix: fix`, leaving out the parts that are None."""
  text = f"{where}: {what}" if where else what
  if fix:
    end = "" if text.endswith(("?", "!")) else "."
    text = f"{text.rstrip('.')}{end} Fix: {fix}"
  return text


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
  """The choices closest to `name` (difflib, case-insensitive), best first.

  E.g. `close_matches("TRAIN_STEPZ", ["TRAIN_STEPS", "BATCH_SIZE"])` ->
  `["TRAIN_STEPS"]`.
  """
  by_lower = {}
  for choice in choices:
    by_lower.setdefault(choice.lower(), choice)
  found = difflib.get_close_matches(name.lower(), list(by_lower), n=n,
                                    cutoff=0.6)
  return [by_lower[m] for m in found]


def did_you_mean(name: str, choices: Iterable[str]) -> Optional[str]:
  """`did you mean X?` (or `X or Y?`) for the closest choices, or None."""
  matches = close_matches(name, choices)
  if not matches:
    return None
  return "did you mean " + " or ".join(matches) + "?"


def unknown_name(kind: str, name: str, choices: Iterable[str], *,
                 where: Optional[str] = None,
                 fix: Optional[str] = None) -> UserError:
  """A UserError for a name that is not one of `choices`, with suggestions.

  E.g. `unknown_name("task or mixture", "crs_redail_v002", names)` ->
  "unknown task or mixture crs_redail_v002; did you mean crs_redial_v002?".
  """
  what = f"unknown {kind} {name}"
  hint = did_you_mean(name, choices)
  if hint:
    what = f"{what}; {hint}"
  return UserError(what, where=where, fix=fix)


def get_mixture_or_task(name: str, *, where: Optional[str] = None) -> Any:
  """`seqio.get_mixture_or_task(name)`, with close matches when unknown.

  Args:
    name: a registered seqio Task or Mixture name.
    where: what named it (e.g. the gin macro `MIXTURE_OR_TASK_NAME`).

  Returns:
    The seqio Task or Mixture.

  Raises:
    UserError: no Task or Mixture has that name.
  """
  import seqio  # pylint: disable=g-import-not-at-top  # Keeps this module light.

  names = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
  if not isinstance(name, str) or name not in names:
    raise unknown_name(
        "task or mixture", repr(name) if not isinstance(name, str) else name,
        sorted(names) if isinstance(name, str) else [], where=where,
        fix="python -m crs_tasks.inspect_task --list shows the names")
  return seqio.get_mixture_or_task(name)


def get_subtasks(name: str, *, where: Optional[str] = None) -> list[Any]:
  """The Tasks of a Task or Mixture name, in order (a Task: itself).

  The project's one mixture -> tasks expansion; an unknown name is the
  `get_mixture_or_task` UserError.

  Args:
    name: a registered seqio Task or Mixture name.
    where: what named it (e.g. the gin macro `MIXTURE_OR_TASK_NAME`).

  Returns:
    The seqio Tasks (`seqio.get_subtasks`).

  Raises:
    UserError: no Task or Mixture has that name.
  """
  import seqio  # pylint: disable=g-import-not-at-top  # Keeps this module light.

  return list(seqio.get_subtasks(get_mixture_or_task(name, where=where)))


def utf8_error(raw: bytes, error: UnicodeDecodeError) -> str:
  """`not valid UTF-8 (byte 0xff at column 7)` for a line that fails."""
  return (f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column "
          f"{error.start + 1})")


def utf8_lines(lines: Iterable[bytes], path: str) -> Iterator[str]:
  """Decodes the lines of a file opened in binary mode, naming a bad one.

  For files where a bad line stops the command (CSV tables): a line that is
  not valid UTF-8 raises a UserError naming `path:line` and the byte.

  Args:
    lines: the file's lines, as bytes (`open(path, "rb")`).
    path: the file, for the message.

  Yields:
    Each line as text.

  Raises:
    UserError: a line is not valid UTF-8.
  """
  for number, raw in enumerate(lines, start=1):
    try:
      yield raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise UserError(
          utf8_error(raw, e), where=f"{path}:{number}",
          fix="fix or delete that line, or convert the file to UTF-8 (e.g. "
          "iconv -f latin1 -t utf-8)") from None
