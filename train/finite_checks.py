"""NaN/Inf safety of training: stop at once, never save weights that are bad.

`check_finite` runs on every step's host metrics and raises
`NonFiniteLossError` when the loss or gradient norm is NaN or Inf;
`check_before_save` runs before every checkpoint on what
`steps.make_check_step` computed from the weights about to be saved and the
next batch (finite weights, finite next loss and gradient norm). The error
names the last good checkpoint and how to resume from it.
"""

import math
from typing import Mapping, Optional

from crs_runtime import errors


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """The loss or gradient norm became NaN/Inf; nothing after it was saved.

  The message names the last good checkpoint: one whose weights are finite
  and give a finite loss and gradient norm on the batch after it (checked by
  `steps.make_check_step` before every save), so rerunning the same
  command with a lower learning rate resumes from it.
  """


def _last_good(last_ckpt: Optional[int]) -> str:
  if last_ckpt is None:
    return "No checkpoint was saved"
  return f"The last good checkpoint is step {last_ckpt}"


def _restart_hint(last_ckpt: Optional[int]) -> str:
  resume = (f"it resumes from step {last_ckpt}" if last_ckpt is not None
            else "no checkpoint was kept, so it starts from scratch")
  return ("lower LEARNING_RATE (or check the data), then rerun the same "
          f"command: {resume}")


def check_finite(step: int, metrics: Mapping[str, float], last_ckpt) -> None:
  """Raises NonFiniteLossError if the loss or grad norm of `step` is not
  finite."""
  for name in ("loss", "grad_norm"):
    value = metrics.get(name, 0.0)
    if not math.isfinite(value):
      label = "training loss" if name == "loss" else "gradient norm"
      raise NonFiniteLossError(
          f"{label} is {value} at step {step}; stopping without saving. "
          f"{_last_good(last_ckpt)}",
          fix=_restart_hint(last_ckpt))


def check_before_save(step: int, metrics: Mapping[str, float],
                      last_ckpt: Optional[int]) -> None:
  """Raises NonFiniteLossError if the weights after `step` must not be saved.

  Args:
    step: the step whose weights are about to be saved.
    metrics: `check_step` on them and the next batch (host floats).
    last_ckpt: the last checkpoint saved, named in the message.
  """
  problems = []
  if metrics["params_finite"] != 1.0:
    problems.append("some weights are not finite")
  for name, label in (("loss", "next loss"), ("grad_norm",
                                               "next gradient norm")):
    if not math.isfinite(metrics[name]):
      problems.append(f"their {label} is {metrics[name]}")
  if problems:
    raise NonFiniteLossError(
        f"the weights after step {step} are not saved: "
        f"{', '.join(problems)}. {_last_good(last_ckpt)}",
        fix=_restart_hint(last_ckpt))
