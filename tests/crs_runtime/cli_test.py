"""Tests for crs_runtime/cli.py: one line and exit code 2 for user errors."""

import logging
import os
import sys

from absl import app
from absl import flags
from absl import logging as absl_logging
import pytest

from crs_runtime import cli
from crs_runtime import errors


def _exit(main, argv=("prog",)):
  """Runs `cli.wrap_main(main)`; returns the SystemExit code."""
  with pytest.raises(SystemExit) as info:
    cli.wrap_main(main)(list(argv))
  return info.value.code


def _raise(exc):
  def main(argv):
    del argv
    raise exc
  return main


def test_user_error_is_one_line_and_exit_code_2(capsys, monkeypatch):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  code = _exit(_raise(errors.UserError(
      "rating 'four' is not a number", where="ratings.csv:12:rating",
      fix="fix or delete that line")))
  err = capsys.readouterr().err
  assert code == 2
  assert err == ("error: ratings.csv:12:rating: rating 'four' is not a "
                 "number. Fix: fix or delete that line\n")


@pytest.mark.parametrize("exc, line", [
    (app.UsageError("--checkpoint_path is required"),
     "error: --checkpoint_path is required"),
    (FileNotFoundError(2, "No such file or directory", "/data/x.csv"),
     "error: No such file or directory: /data/x.csv"),
    (PermissionError(13, "Permission denied", "/ro/run"),
     "error: Permission denied: /ro/run"),
    # gin's context lines are folded into the one line.
    (errors.UserError("no macro X\n  In file a.gin, line 3"),
     "error: no macro X In file a.gin, line 3"),
    # What gin re-raises from a configurable loses OSError.filename.
    (FileNotFoundError("[Errno 2] No such file: '/x'\n  In call to "
                       "configurable 'train' (<function train>)"),
     "error: [Errno 2] No such file: '/x'"),
])
def test_user_errors_of_other_types(exc, line, capsys, monkeypatch):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  assert _exit(_raise(exc)) == 2
  err = capsys.readouterr().err
  assert err == line + "\n"
  assert "Traceback" not in err


def test_programming_errors_still_raise(monkeypatch):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  with pytest.raises(ZeroDivisionError):
    cli.wrap_main(_raise(ZeroDivisionError("bug")))(["prog"])


def test_traceback_env_var_reraises_user_errors(monkeypatch):
  monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
  with pytest.raises(errors.UserError):
    cli.wrap_main(_raise(errors.UserError("bad")))(["prog"])


def test_gin_wrapped_user_error_keeps_its_own_message(capsys, monkeypatch):
  """gin appends "In call to configurable ..." to exceptions it re-raises."""
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  import gin  # pylint: disable=g-import-not-at-top

  @gin.configurable("cli_test_fn")
  def fn():
    raise errors.UserError("bad length", where="TASK_FEATURE_LENGTHS")

  assert _exit(lambda argv: fn()) == 2
  assert capsys.readouterr().err == (
      "error: TASK_FEATURE_LENGTHS: bad length\n")


def test_bad_flag_is_one_line(capsys):
  values = flags.FlagValues()
  flags.DEFINE_string("redial_dir", None, "dir", flag_values=values)
  parser = cli.wrap_flags_parser(values)
  with pytest.raises(SystemExit) as info:
    parser(["prog", "--redial_dirr=/x"])
  assert info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: Unknown command line flag 'redial_dirr'")
  assert "redial_dir" in err and err.count("\n") == 1


def test_verbose_argv():
  assert cli._verbose_argv(["p", "--verbosity=1"])
  assert cli._verbose_argv(["p", "-v", "2"])
  assert not cli._verbose_argv(["p", "--verbosity=0", "--x=1"])


def test_module_run_as_main(monkeypatch):
  monkeypatch.setattr(sys, "orig_argv",
                      ["python", "-m", "train.main", "--gin_file=a"],
                      raising=False)
  assert cli._module_run_as_main() == "train.main"
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pytest", "-q"],
                      raising=False)
  assert cli._module_run_as_main() == "pytest"
  assert cli.ENTRY_POINTS.get("pytest") is None
  monkeypatch.setattr(sys, "orig_argv", ["python", "script.py", "-m", "x"],
                      raising=False)
  assert cli._module_run_as_main() is None


def test_log_capture_sends_fd2_and_logging_to_the_file(tmp_path, capfd):
  flags.FLAGS.mark_as_parsed()  # As under app.run: absl logs to its stream.
  logger = logging.getLogger("cli_test_orbax")
  logger.propagate = False
  logger.addHandler(absl_logging.get_absl_handler())
  capture = cli.LogCapture("unit")
  try:
    os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit\n")
    logger.warning("checkpoint_manager noise")
    sys.stderr.write("progress 50%\n")
    moved = capture.move_to(str(tmp_path))
    os.write(2, b"after the move\n")
  finally:
    capture.close()
    logger.removeHandler(absl_logging.get_absl_handler())
  err = capfd.readouterr().err
  assert "progress 50%" in err
  assert "cuInit" not in err and "noise" not in err and "after" not in err
  assert moved == str(tmp_path / "logs" / "unit.log")
  text = (tmp_path / "logs" / "unit.log").read_text()
  assert "cuInit" in text and "after the move" in text
  assert "checkpoint_manager noise" in text


def test_log_kept_only_when_moved_or_after_a_failure(tmp_path):
  unmoved = cli.LogCapture("unit")
  unmoved.close(keep=False)  # A successful command that never moved it.
  assert not os.path.exists(unmoved.path)
  failed = cli.LogCapture("unit")
  failed.close(keep=True)
  assert os.path.exists(failed.path)
  os.remove(failed.path)
  moved = cli.LogCapture("unit")
  path = moved.move_to(str(tmp_path))
  moved.close(keep=False)
  assert os.path.exists(path)


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  code = _exit(_raise(KeyboardInterrupt(
      "training interrupted at step 7; the last checkpoint is step 6 "
      "(/r/checkpoints/6); resume with: python -m train.main --gin_file=x")))
  assert code == 130
  assert capsys.readouterr().err == (
      "interrupted: training interrupted at step 7; the last checkpoint is "
      "step 6 (/r/checkpoints/6); resume with: python -m train.main "
      "--gin_file=x\n")
  assert _exit(_raise(KeyboardInterrupt())) == 130
  assert capsys.readouterr().err == "interrupted\n"


def _first_lines(path, pattern):
  """Line numbers of the module-level statements of `path` matching."""
  import ast  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  tree = ast.parse(open(path, encoding="utf-8").read())
  return [node.lineno for node in tree.body
          if re.search(pattern, ast.unparse(node))]


@pytest.mark.parametrize("module", sorted(cli.ENTRY_POINTS))
def test_entry_points_capture_before_heavy_imports(module):
  """Each command starts its log capture before TensorFlow/JAX/gin load."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  package = module.split(".")[0]
  path = os.path.join(root, *module.split(".")) + ".py"
  assert os.path.isfile(path), module
  if package == "crs_tasks":
    # Python imports the package first: its __init__ starts the capture.
    path = os.path.join(root, "crs_tasks", "__init__.py")
    starts = _first_lines(path, r"capture_early\(package='crs_tasks'\)")
  else:
    starts = _first_lines(path, r"^cli\.capture_early\(\)$")
  heavy = _first_lines(
      path, r"^(import|from) (jax|tensorflow|gin|seqio|crs_tasks|train|"
      r"eval|crs_chat)\b")
  assert starts and heavy, (module, starts, heavy)
  assert starts[0] < min(heavy), module
