"""Prints the module and function length table of the project.

  python scripts/code_lengths.py [--top 15] [--tests_over 40]

Lists every Python module under the packages (not tests/) with its line
count, the longest functions outside tests, and the test functions longer
than `--tests_over` lines (candidates to split into named behaviours). It
exits 1 when a module exceeds 600 lines or a function outside tests exceeds
100 lines (the limits of issue 13), so CI can run it as a check.
"""

import argparse
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("crs_runtime", "crs_tasks", "train", "eval", "crs_chat", "bench",
            "scripts")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def functions(path: pathlib.Path):
  """(qualified name, first line, line count) of every def in `path`."""
  tree = ast.parse(path.read_text(encoding="utf-8"))
  out = []

  def visit(node, prefix):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
        name = prefix + child.name
        start = min([child.lineno] + [d.lineno for d in child.decorator_list])
        out.append((name, child.lineno, child.end_lineno - start + 1))
        visit(child, name + ".")
      elif isinstance(child, ast.ClassDef):
        visit(child, prefix + child.name + ".")

  visit(tree, "")
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--top", type=int, default=15)
  parser.add_argument("--tests_over", type=int, default=40)
  args = parser.parse_args(argv)
  modules = sorted(
      p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
  tests = sorted((ROOT / "tests").rglob("*.py"))
  failures = []

  print(f"{'lines':>6}  module")
  sizes = [(len(p.read_text(encoding="utf-8").splitlines()), p)
           for p in modules]
  for n, path in sorted(sizes, key=lambda x: -x[0]):
    flag = "  OVER" if n > MAX_MODULE_LINES else ""
    print(f"{n:>6}  {path.relative_to(ROOT)}{flag}")
    if flag:
      failures.append(f"{path.relative_to(ROOT)}: {n} lines")

  defs = [(n, f"{p.relative_to(ROOT)}:{line} {name}")
          for p in modules for name, line, n in functions(p)]
  defs.sort(key=lambda x: -x[0])
  print(f"\n{'lines':>6}  longest functions (outside tests)")
  for n, where in defs[:args.top]:
    flag = "  OVER" if n > MAX_FUNCTION_LINES else ""
    print(f"{n:>6}  {where}{flag}")
  failures += [f"{w}: {n} lines" for n, w in defs if n > MAX_FUNCTION_LINES]

  long_tests = sorted(
      ((n, f"{p.relative_to(ROOT)}:{line} {name}")
       for p in tests for name, line, n in functions(p)
       if name.split(".")[-1].startswith("test") and n > args.tests_over),
      key=lambda x: -x[0])
  print(f"\n{'lines':>6}  test functions over {args.tests_over} lines")
  for n, where in long_tests:
    print(f"{n:>6}  {where}")

  total = sum(n for n, _ in sizes)
  print(f"\n{len(modules)} modules, {total} lines; largest module "
        f"{max(n for n, _ in sizes)} (limit {MAX_MODULE_LINES}); longest "
        f"function {defs[0][0]} (limit {MAX_FUNCTION_LINES}); "
        f"{len(long_tests)} tests over {args.tests_over} lines")
  for failure in failures:
    print("over the limit:", failure, file=sys.stderr)
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
