"""Shared pytest fixtures.

`shared_data` points at the real data in ../shared/data beside the project
root, and skips the test with a reason when that folder is absent, so the suite
passes on a fresh clone without it.
"""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("CRS_SHARED_DATA", ROOT.parent / "shared" / "data")
)
TESTDATA = ROOT / "tests" / "testdata"

# Keep TensorFlow off any accelerator and quiet; JAX owns the devices.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def shared_data() -> pathlib.Path:
  """Path to ../shared/data; skips the test when it is absent."""
  if not (SHARED_DATA / "redial" / "test_data.jsonl").exists():
    pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data)")
  return SHARED_DATA


@pytest.fixture
def testdata() -> pathlib.Path:
  """Path to the checked-in fixtures in tests/testdata."""
  return TESTDATA
