"""Shared pytest fixtures.

`shared_data` points at the real data in ../shared/data beside the project
root (or $CRS_SHARED_DATA), and skips the test with a reason when that folder
is absent, so the suite passes on a fresh clone without it; the run then ends
with one line counting those skips. Tests using it carry the `shared_data`
marker. Under CI=true with the data present, a real-data skip fails.

torch, triton and transformers cannot be imported in the pytest process (see
`_KeepTorchOut`): the live Hugging Face comparison runs
scripts/make_hf_goldens.py in a subprocess.
"""

import ast
import importlib.abc
import os
import pathlib
import re
import shlex
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("CRS_SHARED_DATA", ROOT.parent / "shared" / "data")
)
TESTDATA = ROOT / "tests" / "testdata"

# Keep TensorFlow off any accelerator and quiet; JAX owns the devices.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# The pytest process holds TensorFlow (seqio), and importing triton (which
# torch and transformers load) next to TensorFlow segfaults the whole run
# (torch 2.14.1 / triton 3.8 / TF 2.21). The default install has no torch;
# with the parity extra, torch code runs in its own process
# (scripts/make_hf_goldens.py). Importing it here fails fast instead.
_KEPT_OUT = ("torch", "triton", "transformers")


class _KeepTorchOut(importlib.abc.MetaPathFinder):
  """Refuses to import torch, triton and transformers in this process."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname.split(".")[0] in _KEPT_OUT:
      raise ModuleNotFoundError(
          f"{fullname} is kept out of the pytest process, which holds "
          "TensorFlow (triton segfaults next to it): run torch code in a "
          "subprocess, see scripts/make_hf_goldens.py", name=fullname)
    return None


if not any(isinstance(f, _KeepTorchOut) for f in sys.meta_path):
  sys.meta_path.insert(0, _KeepTorchOut())


def _shared_data_present() -> bool:
  return (SHARED_DATA / "redial" / "test_data.jsonl").exists()


@pytest.fixture
def shared_data() -> pathlib.Path:
  """Path to ../shared/data; skips the test when it is absent."""
  if not _shared_data_present():
    pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data)")
  return SHARED_DATA


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "shared_data: needs ../shared/data (skipped when absent)")


def pytest_collection_modifyitems(items):
  """Every test that uses `shared_data` carries the `shared_data` marker."""
  for item in items:
    if "shared_data" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.shared_data)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  """Under CI=true with the data present, a real-data skip is a failure."""
  del call
  report = (yield).get_result()
  if (report.skipped and not hasattr(report, "wasxfail")
      and os.environ.get("CI", "").lower() == "true"
      and item.get_closest_marker("shared_data") and _shared_data_present()):
    reason = (report.longrepr[2] if isinstance(report.longrepr, tuple)
              else str(report.longrepr)).removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (f"CI=true and {SHARED_DATA} is present, but this "
                       f"real-data test skipped: {reason}")


def pytest_terminal_summary(terminalreporter):
  """One line when real-data tests were skipped for want of the data."""
  skipped = [r for r in terminalreporter.stats.get("skipped", [])
             if "shared_data" in r.keywords]
  if skipped and not _shared_data_present():
    n = len(skipped)
    terminalreporter.write_line(
        f"{n} real-data test{'s' * (n != 1)} skipped: no {SHARED_DATA}; "
        "to run them, unzip ReDial (github.com/ReDialData/website, "
        "redial_dataset.zip) into redial/ and MovieLens ml-latest-small "
        "into movielens/ml-latest-small/ there, or point CRS_SHARED_DATA at "
        "such a folder",
        yellow=True, bold=True)


@pytest.fixture
def testdata() -> pathlib.Path:
  """Path to the checked-in fixtures in tests/testdata."""
  return TESTDATA


def write_tiny_model_dir(model_dir: str, step: int = 3) -> str:
  """A random 1-layer T5 checkpoint on the T5 vocabulary, as training writes.

  `train.checkpointing.load_model(model_dir)` reads it back; used by the
  eval entry-point tests (eval.main, crs_chat.main).
  """
  # Imported here: most tests need neither JAX models nor checkpoints.
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from crs_tasks import features  # pylint: disable=g-import-not-at-top
  from train import checkpointing, models, network  # pylint: disable=g-import-not-at-top,g-multiple-import

  vocab = features.get_vocabulary()
  config = network.T5Config(
      vocab_size=32128, emb_dim=16, num_heads=2, num_encoder_layers=1,
      num_decoder_layers=1, head_dim=8, mlp_dim=32,
      mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=False)
  model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                     vocab)
  variables = model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)})
  manager = checkpointing.CheckpointManager(model_dir)
  manager.save(step, params=nn.meta.unbox(variables["params"]),
               opt_state={"count": np.zeros((), np.int32)}, data_position=0)
  manager.close()
  checkpointing.save_model_files(model_dir, model)
  return model_dir


@pytest.fixture
def tiny_model_dir(tmp_path):
  """Factory: `tiny_model_dir(step=3)` writes a random tiny checkpoint."""
  def make(step: int = 3) -> str:
    return write_tiny_model_dir(str(tmp_path / f"tiny_{step}"), step)
  return make


@pytest.fixture(scope="session")
def write_tiny_model():
  """`write_tiny_model(model_dir, step)`, for fixtures wider than a test."""
  return write_tiny_model_dir


# Flags and gin macros of a suggested command that name inputs: they must
# exist. (MODEL_DIR, --output_dir, ... are outputs and may not.)
_INPUT_FLAGS = ("gin_file", "CHECKPOINT_PATH", "MOVIE_LIST", "PROBE_DIR",
                "checkpoint_path", "probe_dir", "movielens_dir", "tfds_dir",
                "model_dirs")


def _gin_text(path: pathlib.Path) -> str:
  """A gin file's text with its includes (searched in gin/ and the root)."""
  text = path.read_text()
  for include in re.findall(r"^include '([^']+)'", text, re.M):
    text += _gin_text(next(p for p in (ROOT / "gin" / include, ROOT / include)
                           if p.exists()))
  return text


def assert_runnable(line: str, cwd: pathlib.Path = ROOT) -> None:
  """Checks a `next: <command>` line a command printed.

  The module exists; every `--flag` is one the module defines; every
  `--gin.MACRO` is defined by the gin files given; inputs (see
  `_INPUT_FLAGS`), `VAR=dir` prefixes and `cat`/`head` files exist; task
  names are registered.

  Args:
    line: the printed line.
    cwd: where the command is to be run (relative paths start there).
  """
  assert line.startswith("next: "), line
  words = shlex.split(line[len("next: "):])
  while re.fullmatch(r"[A-Z_]+=.+", words[0]):
    directory = words.pop(0).split("=", 1)[1]
    assert os.path.isdir(cwd / directory), line
  if words[0] in ("cat", "head"):
    assert os.path.isfile(cwd / words[-1]), line
    return
  assert words[:2] == ["python", "-m"], line
  source = ROOT / (words[2].replace(".", "/") + ".py")
  assert source.is_file(), line
  code = source.read_text()
  values, macros, gin_text = {}, {}, ""
  for word in words[3:]:
    assert word.startswith("--"), (word, line)
    name, _, value = word[2:].partition("=")  # --bool_flag has no value.
    if name.startswith("gin."):
      macros[name[4:]] = ast.literal_eval(value)
      continue
    if name == "gin_file":
      assert "gin_flags" in code, (word, line)
      gin_text += _gin_text(next(p for p in (cwd / value, ROOT / "gin" / value)
                                 if p.exists()))
    else:
      assert re.search(rf"DEFINE_\w+\(\s*\"{name}\"", code), (
          f"{words[2]} defines no --{name}", line)
    values[name] = value
  for name, value in macros.items():
    assert re.search(rf"^{name}\s*=", gin_text, re.M), (
        f"no gin file of the command defines {name}", line)
    values[name] = value
  for name in _INPUT_FLAGS:
    for path in str(values.get(name) or "").split(","):
      assert not path or os.path.exists(cwd / path), (name, path, line)
  import seqio  # pylint: disable=g-import-not-at-top
  import crs_tasks  # pylint: disable=g-import-not-at-top,unused-import
  for name in ("MIXTURE_OR_TASK_NAME", "task"):
    if name in values:
      assert values[name] in (set(seqio.TaskRegistry.names())
                              | set(seqio.MixtureRegistry.names())), line


@pytest.fixture
def runnable():
  """`runnable(line, cwd=ROOT)`: `assert_runnable` for a `next:` line."""
  return assert_runnable
