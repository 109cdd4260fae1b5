"""Postprocessors of the crs_tasks Tasks: model text -> what metrics read.

`redial_postprocess` is the `postprocess_fn` of the
ReDial tasks (seqio calls it with `example=` and `is_target=`): predictions
stay text, targets become a dict holding the reference text and the
evaluation metadata, so the `crs_tasks/metrics.py` functions get everything
from `(targets, predictions)`. `to_python` is the project's one numpy/tf ->
python converter (also `train.model_inputs`' examples).

To add a postprocessor: a pure function of one output (plus optional
`example`/`is_target` keywords) with a literal-example test in
`tests/crs_tasks/postprocessors_test.py`.
"""

from typing import Any, Mapping, Optional, Union

import numpy as np

from crs_tasks import metrics
from crs_tasks import redial_utils




def to_python(value: Any) -> Any:
  """A tf/numpy feature value as JSON-friendly python.

  Bytes become str (UTF-8), arrays lists (of str for string arrays), numpy
  scalars python scalars: `np.array([b"heat (1995)"])` -> `["heat (1995)"]`.
  """
  if hasattr(value, "numpy"):
    value = value.numpy()
  if isinstance(value, np.ndarray):
    if value.ndim == 0:
      value = value.item()
    else:
      return [to_python(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [to_python(v) for v in value]
  if isinstance(value, bytes):
    return metrics.to_text(value)
  if isinstance(value, np.generic):
    return value.item()
  return value


def redial_postprocess(
    output: metrics.Text,
    example: Optional[Mapping[str, Any]] = None,
    is_target: bool = False,
) -> Union[str, dict[str, Any]]:
  """The ReDial tasks' `postprocess_fn`.

  A prediction `b"try @ heat (1995) @"` becomes `"try @ heat (1995) @"`. A
  target with its example becomes `{"text": "try @ heat (1995) @",
  "conversation_id": "20001", "turn_index": 3, "target_movies":
  ["heat (1995)"], ...}` (each of `redial_utils.METADATA_FEATURES` the
  example has, as
  python values).

  Args:
    output: decoded model output, or the target text.
    example: the task example (seqio passes it); metadata comes from it.
    is_target: True for targets.

  Returns:
    The text for predictions (and for targets without an example); a dict
    with `text` and the metadata for targets.
  """
  text = metrics.to_text(output)
  if not is_target or example is None:
    return text
  out = {"text": text}
  for key in redial_utils.METADATA_FEATURES:
    if key in example:
      out[key] = to_python(example[key])
  return out
