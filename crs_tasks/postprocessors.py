"""Postprocessors of the crs_tasks Tasks: model text -> what metrics read.

`extract_titles` reads the `@ Title (Year) @` spans that every crs task writes
around movie titles. `redial_postprocess` is the `postprocess_fn` of the
ReDial tasks (seqio calls it with `example=` and `is_target=`): predictions
stay text, targets become a dict holding the reference text and the
evaluation metadata, so `eval/metrics.py` functions get everything from
`(targets, predictions)`.

To add a postprocessor: a pure function of one output (plus optional
`example`/`is_target` keywords) with a literal-example test in
`tests/crs_tasks/postprocessors_test.py`.
"""

from typing import Any, Mapping, Optional, Union

import numpy as np

from eval import metrics

REDIAL_METADATA = (
    "conversation_id",
    "turn_index",
    "seeker_movies",
    "recommender_movies",
    "target_movies",
    "target_movies_repeated",
    "context_movies",
)

Text = metrics.Text
# One implementation each, in the leaf module `eval.metrics` (which imports
# nothing of this project, so `crs_tasks` -> `eval.metrics` is no loop).
to_text = metrics.to_text
extract_titles = metrics.extract_titles


def _metadata(value: Any) -> Any:
  """Tensor/numpy/bytes metadata -> python str, int or list of str."""
  if hasattr(value, "numpy"):
    value = value.numpy()
  if isinstance(value, np.ndarray):
    if value.ndim == 0:
      value = value.item()
    else:
      return [_metadata(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [_metadata(v) for v in value]
  if isinstance(value, bytes):
    return to_text(value)
  if isinstance(value, np.generic):
    return value.item()
  return value


def redial_postprocess(
    output: Text,
    example: Optional[Mapping[str, Any]] = None,
    is_target: bool = False,
) -> Union[str, dict[str, Any]]:
  """The ReDial tasks' `postprocess_fn`.

  A prediction `b"try @ heat (1995) @"` becomes `"try @ heat (1995) @"`. A
  target with its example becomes `{"text": "try @ heat (1995) @",
  "conversation_id": "20001", "turn_index": 3, "target_movies":
  ["heat (1995)"], ...}` (each of `REDIAL_METADATA` the example has, as
  python values).

  Args:
    output: decoded model output, or the target text.
    example: the task example (seqio passes it); metadata comes from it.
    is_target: True for targets.

  Returns:
    The text for predictions (and for targets without an example); a dict
    with `text` and the metadata for targets.
  """
  text = to_text(output)
  if not is_target or example is None:
    return text
  out = {"text": text}
  for key in REDIAL_METADATA:
    if key in example:
      out[key] = _metadata(example[key])
  return out
