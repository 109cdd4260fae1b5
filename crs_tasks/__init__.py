"""crs_tasks: ReDial and MovieLens as versioned seqio Tasks and Mixtures.

Importing the package registers the TFDS builders (`crs_redial`,
`crs_movielens`), the Tasks (`crs_tasks/redial.py`, `crs_tasks/movielens.py`)
and the Mixtures (`crs_tasks/mixtures.py`); this is the only module that
imports them for their side effects.
"""

# pylint: disable=unused-import
from crs_tasks.tfds_builders import movielens as movielens_builder
from crs_tasks.tfds_builders import redial as redial_builder
from crs_tasks import redial
from crs_tasks import movielens
from crs_tasks import mixtures
from crs_tasks import probes  # pylint: disable=unused-import
