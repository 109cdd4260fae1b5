"""train: a compact t5x-style network, model wrapper and trainer.

`import crs_tasks` comes first so that `python -m train.main` (or
`train.infer`) starts its log capture before TensorFlow and JAX are
imported (see `crs_tasks.cli.capture_early`).
"""

import crs_tasks  # pylint: disable=unused-import
