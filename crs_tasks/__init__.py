"""crs_tasks: ReDial and MovieLens as versioned seqio Tasks and Mixtures.

Importing the package registers the TFDS builders (`crs_redial`,
`crs_movielens`), the Tasks (`crs_tasks/redial.py`, `crs_tasks/movielens.py`)
and the Mixtures (`crs_tasks/mixtures.py`); this is the only module that
imports them for their side effects.

Under `python -m <one of our commands>` it first starts the command's log
capture (`crs_tasks.cli.capture_early`), before TensorFlow is imported, so
TensorFlow's C++ start-up lines go to the log file, not the terminal.
"""

from crs_tasks import cli as _cli

_cli.capture_early()

# pylint: disable=unused-import,g-import-not-at-top
from crs_tasks.tfds_builders import movielens as movielens_builder
from crs_tasks.tfds_builders import redial as redial_builder
from crs_tasks import redial
from crs_tasks import movielens
from crs_tasks import mixtures
from crs_tasks import pretraining
from crs_tasks import probes  # pylint: disable=unused-import
