"""crs_tasks: ReDial and MovieLens as versioned seqio Tasks and Mixtures.

Importing the package registers the TFDS builders (`crs_redial`,
`crs_movielens`), the Tasks (`crs_tasks/redial.py`, `crs_tasks/movielens.py`)
and the Mixtures (`crs_tasks/mixtures.py`); this is the only module that
imports them for their side effects.

Python imports this package before the module of `python -m
crs_tasks.<command>` (`prepare`, `inspect_task`, `build_probes`), so that
command's log capture starts here, before TensorFlow loads; for any other
process (`python -m train.main`, library use, tests) the call does nothing
and each entry point starts its own.
"""

from crs_runtime import cli as _cli

_cli.capture_early(package="crs_tasks")

# pylint: disable=unused-import,g-import-not-at-top
from crs_tasks.tfds_builders import movielens as movielens_builder
from crs_tasks.tfds_builders import redial as redial_builder
from crs_tasks import redial
from crs_tasks import movielens
from crs_tasks import mixtures
from crs_tasks import pretraining
from crs_tasks import probes  # pylint: disable=unused-import
