"""The packages stack in floors (docs/ARCHITECTURE.md, "Floors").

crs_runtime < crs_tasks < train < eval < crs_chat: a module imports only
from its own floor and the floors below. Checked on the source (every
import statement, also those inside functions) and, for the two light
entry doors, in a fresh interpreter's `sys.modules`.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLOORS = ("crs_runtime", "crs_tasks", "train", "eval", "crs_chat")
DATA_MODULES = ("tensorflow", "tensorflow_datasets", "seqio", "sacrebleu",
                "crs_tasks")


def imported_packages(source: str) -> set[tuple[int, str]]:
  """(line, top-level package) of every import in `source`."""
  out = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      out |= {(node.lineno, a.name.split(".")[0]) for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out.add((node.lineno, node.module.split(".")[0]))
  return out


def upward_imports(root: pathlib.Path) -> list[str]:
  """`path:line: floor imports higher_floor` for every import up a floor."""
  found = []
  for floor, package in enumerate(FLOORS):
    for path in sorted((root / package).rglob("*.py")):
      for line, name in sorted(imported_packages(path.read_text())):
        if name in FLOORS and FLOORS.index(name) > floor:
          found.append(f"{path.relative_to(root)}:{line}: {package} "
                       f"imports {name}")
  return found


def test_imported_packages_reads_every_form():
  source = ("import train.network\nfrom eval import ranking\n"
            "def f():\n  from crs_chat import main\nfrom . import x\n")
  assert imported_packages(source) == {(1, "train"), (2, "eval"),
                                       (4, "crs_chat")}


def test_upward_import_is_found(tmp_path):
  (tmp_path / "crs_tasks").mkdir()
  (tmp_path / "crs_tasks" / "redial.py").write_text(
      "from crs_runtime import cli\nfrom eval import metrics\n")
  assert upward_imports(tmp_path) == [
      "crs_tasks/redial.py:2: crs_tasks imports eval"]


def test_no_import_runs_up_a_floor():
  assert upward_imports(ROOT) == []


def _loaded_after(statement: str) -> set[str]:
  """Top-level modules loaded by `statement` in a fresh interpreter."""
  code = (f"import sys\n{statement}\n"
          "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300,
                        check=True)
  return set(proc.stdout.split())


def test_import_train_network_loads_no_data_code():
  loaded = _loaded_after("import train.network")
  assert "flax" in loaded  # It did import the network.
  assert not loaded & set(DATA_MODULES), sorted(loaded & set(DATA_MODULES))


@pytest.mark.parametrize("module", ["cli", "errors", "gin_flags"])
def test_crs_runtime_is_light(module):
  loaded = _loaded_after(f"import crs_runtime.{module}")
  heavy = {"tensorflow", "jax", "seqio", *FLOORS[1:]}
  assert not loaded & heavy, sorted(loaded & heavy)
