"""The one exception type for a user's mistake.

Every entry point (`train.main`, `train.infer`, `eval.main`, `eval.chat`,
`eval.report`, `crs_tasks.prepare`, `crs_tasks.inspect_task`, the probes CLI)
prints a `UserError` as one line and exits with code 2, without a traceback
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

from typing import Optional


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
    text = f"{text.rstrip('.')}. Fix: {fix}"
  return text
