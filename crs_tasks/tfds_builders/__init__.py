"""TFDS builders of crs_tasks (`crs_redial`, `crs_movielens`)."""
