r"""How every entry point runs: a user's mistake is one line, logs go to a file.

Each command (`train.main`, `train.infer`, `eval.main`, `crs_chat.main`,
`eval.report`, `eval.probes.main`, `crs_tasks.build_probes`,
`crs_tasks.prepare`, `crs_tasks.inspect_task`) starts its log capture
before its heavy imports,

  from crs_runtime import cli
  cli.capture_early()  # Before TensorFlow loads.

and ends with

  if __name__ == "__main__":
    cli.run(main, name="train", flags_parser=gin_flags.flags_parser)

instead of `absl.app.run(main)`. Then:

* A user's mistake (`errors.UserError`, a bad flag, `app.UsageError`, a
  missing file or a permission error on a path the user named) prints ONE
  line, `error: <message>`, on stderr and exits with code 2. Add
  `--verbosity=1` (absl) or set `CRS_TRACEBACK=1` for the traceback. Any
  other exception is a programming error and raises with its traceback.
  Ctrl-C (`KeyboardInterrupt`) prints one line, `interrupted: <what the
  command says>` (train.main: the last checkpoint and the resume command),
  and exits with code 130.
* Third-party log lines (absl/TensorFlow/JAX/orbax INFO and WARNING lines,
  C++ start-up messages such as `cuInit`, tf.data warnings) go to a log
  file, not the terminal: first a temporary file, then
  `<dir>/logs/<name>.log` once the command calls `log_to(dir)` with its
  output directory (MODEL_DIR, EVAL_OUTPUT_DIR, ...). The terminal keeps
  only the command's own output (stdout) and progress bars and errors
  (stderr). `--verbosity=1` or `CRS_LOGS=stderr` keeps everything on the
  terminal as before.

This module is the ground floor: it imports nothing of the project but
`crs_runtime.errors` and `crs_runtime.allocator`, and nothing heavy, so
every command can import it before TensorFlow.
"""

import datetime
import faulthandler
import logging
import os
import shlex
import shutil
import sys
import tempfile
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging

from crs_runtime import allocator
from crs_runtime import errors

TRACEBACK_ENV = "CRS_TRACEBACK"
LOGS_ENV = "CRS_LOGS"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C.

# Exceptions that are the user's to fix. OSErrors about a path (a missing
# --gin_file, a read-only MODEL_DIR, ...) count: the user named the path.
USER_ERRORS = (
    errors.UserError,
    app.UsageError,
    flags.Error,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def error_line(exc: BaseException) -> str:
  """`error: <message>` on one line (gin's context lines folded in)."""
  if isinstance(exc, errors.UserError):
    text = errors.format_message(exc.what, where=exc.where, fix=exc.fix)
  elif isinstance(exc, OSError) and exc.filename:
    text = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
  else:
    # gin appends "In call to configurable ..." to what it re-raises.
    text = str(exc).split("\n  In call to configurable")[0]
    text = text or type(exc).__name__
  return "error: " + " ".join(text.split())


def _env_on(name: str) -> bool:
  return os.environ.get(name, "").strip().lower() not in ("", "0", "false")


def _verbose() -> bool:
  """--verbosity=1 (or more) was given."""
  try:
    holder = flags.FLAGS["verbosity"]
    return flags.FLAGS.is_parsed() and holder.value >= 1
  except KeyError:
    return False


def logs_on_terminal() -> bool:
  """Every log line stays on the terminal (`--verbosity=1`, CRS_LOGS=stderr)."""
  return _verbose() or (
      os.environ.get(LOGS_ENV, "").strip().lower() == "stderr")


def wants_traceback() -> bool:
  """The user asked for tracebacks of user errors."""
  return _env_on(TRACEBACK_ENV) or _verbose()


# ---------------------------------------------------------------------------
# Log capture.
# ---------------------------------------------------------------------------


class LogCapture:
  """Sends file descriptor 2 and Python logging to a log file.

  `sys.stderr` is re-pointed at a copy of the terminal's stderr, so Python
  writes (progress bars, error lines, tracebacks) still reach the user,
  while C++ libraries writing to descriptor 2 and every `logging` record
  land in the log file.
  """

  def __init__(self, name: str):
    self.name = name
    fd, self.path = tempfile.mkstemp(prefix=f"crs-{name}-", suffix=".log")
    self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
    self.moved = False  # True once the log is in an output directory.
    self._write_header()
    sys.stdout.flush()
    sys.stderr.flush()
    self._saved_stderr = sys.stderr
    self._terminal_fd = os.dup(2)
    sys.stderr = os.fdopen(os.dup(self._terminal_fd), "w", buffering=1,
                           encoding="utf-8", errors="replace")
    os.dup2(self._file.fileno(), 2)
    faulthandler.enable(file=sys.stderr)
    logging.captureWarnings(True)
    self._point_logging_at(self._file)

  def _write_header(self) -> None:
    now = datetime.datetime.now().isoformat(timespec="seconds")
    self._file.write(f"==== {now} {' '.join(sys.argv)}\n")

  def _point_logging_at(self, stream: Any) -> None:
    handler = absl_logging.get_absl_handler()
    handler.python_handler.stream = stream
    for h in logging.getLogger().handlers:
      if isinstance(h, logging.StreamHandler) and h is not handler and (
          getattr(h, "stream", None) is self._saved_stderr):
        h.stream = stream

  def move_to(self, directory: str, name: Optional[str] = None) -> str:
    """Continues the log in `<directory>/logs/<name>.log` (appending).

    When that directory cannot be written, the log stays where it is.

    Args:
      directory: the command's output directory.
      name: the log's name (default: the command's).

    Returns:
      The log file's path.
    """
    path = os.path.join(directory, "logs", f"{name or self.name}.log")
    if os.path.abspath(path) == os.path.abspath(self.path):
      return self.path
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      new = open(path, "a", buffering=1, encoding="utf-8")
    except OSError:
      return self.path
    self._file.flush()
    with open(self.path, encoding="utf-8", errors="replace") as old:
      shutil.copyfileobj(old, new)
    new.flush()
    os.dup2(new.fileno(), 2)
    self._point_logging_at(new)
    old_file, old_path = self._file, self.path
    self._file, self.path = new, path
    old_file.close()
    if not self.moved:
      os.remove(old_path)
    self.moved = True
    return path

  def close(self, keep: bool = True) -> None:
    """Gives descriptor 2 and `sys.stderr` back to the terminal.

    Args:
      keep: keep a log that is still in the temporary folder (one that was
        never moved to an output directory); False deletes it.
    """
    sys.stderr.flush()
    self._file.flush()
    os.dup2(self._terminal_fd, 2)
    os.close(self._terminal_fd)
    self._point_logging_at(self._saved_stderr)
    sys.stderr = self._saved_stderr
    self._file.close()
    if not keep and not self.moved:
      os.remove(self.path)


_CAPTURE: Optional[LogCapture] = None


def log_to(directory: Optional[str], *, process_index: int = 0,
           process_count: int = 1) -> Optional[str]:
  """Moves this command's log file into `<directory>/logs/`.

  Entry points call it once their output directory is known (and checked).
  Does nothing when logs are not captured (library use, tests,
  `--verbosity=1`). In a run of several processes sharing the directory,
  each has its own log: `<name>.process<i>.log`.

  Args:
    directory: the output directory (None: keep the temporary log).
    process_index: this process's index (`jax.process_index()`).
    process_count: processes in the run.

  Returns:
    The log file's path, or None when logs are not captured.
  """
  if _CAPTURE is None:
    return None
  if directory:
    name = (f"{_CAPTURE.name}.process{process_index}"
            if process_count > 1 else None)
    return _CAPTURE.move_to(directory, name)
  return _CAPTURE.path


def log_path() -> Optional[str]:
  """Where this command's third-party logs go (None: the terminal)."""
  return _CAPTURE.path if _CAPTURE is not None else None


def _verbose_argv(argv: Sequence[str]) -> bool:
  """--verbosity=N (or -v=N) with N >= 1 in the raw command line."""
  for i, arg in enumerate(argv):
    name, sep, value = arg.partition("=")
    if name not in ("--verbosity", "-v", "--v"):
      continue
    if not sep and i + 1 < len(argv):
      value = argv[i + 1]
    try:
      if int(value) >= 1:
        return True
    except ValueError:
      pass
  return False


# `python -m <module>` -> the command's name (its log file's name).
ENTRY_POINTS = {
    "train.main": "train",
    "train.infer": "infer",
    "eval.main": "eval",
    "crs_chat.main": "chat",
    "eval.report": "report",
    "eval.probes.main": "probes",
    "eval.baselines": "baselines",
    "crs_tasks.build_probes": "build_probes",
    "crs_tasks.prepare": "prepare",
    "crs_tasks.inspect_task": "inspect_task",
}


def _module_run_as_main() -> Optional[str]:
  """`train.main` for `python -m train.main ...`, else None."""
  argv = list(getattr(sys, "orig_argv", []))
  for i, arg in enumerate(argv[1:-1], start=1):
    if arg == "-m":
      return argv[i + 1]
    if not arg.startswith("-"):
      return None
  return None


def capture_early(package: Optional[str] = None) -> None:
  """Starts the log capture now if this process runs one of our commands.

  Such a command first re-executes itself under tcmalloc where the
  machine has it (`allocator.maybe_reexec`; `CRS_MALLOC=system` keeps the
  system allocator).

  Each entry point calls it before its heavy imports (TensorFlow, JAX):
  under `python -m train.main` (or any module in ENTRY_POINTS)
  TensorFlow's C++ start-up lines then go to the log file too. Does
  nothing otherwise (library use, tests, t5x).

  Args:
    package: only start it when the command run is a module of this
      package (`crs_tasks`, whose `__init__` loads TensorFlow before the
      command's own module runs).
  """
  global _CAPTURE
  module = _module_run_as_main() or ""
  if package and not module.startswith(package + "."):
    return
  name = ENTRY_POINTS.get(module)
  if name:
    # Under tcmalloc where the machine has it: one re-execution, before
    # TensorFlow and JAX load (crs_runtime/allocator.py says why).
    allocator.maybe_reexec()
  if name and _CAPTURE is None and _should_capture(sys.orig_argv):
    _CAPTURE = LogCapture(name)


def _should_capture(argv: Sequence[str]) -> bool:
  return os.environ.get(LOGS_ENV, "").strip().lower() != "stderr" and (
      not _verbose_argv(argv))


# ---------------------------------------------------------------------------
# Running a main.
# ---------------------------------------------------------------------------


def print_user_error(exc: BaseException) -> None:
  sys.stderr.write(error_line(exc) + "\n")
  sys.stderr.flush()


def _exit_user_error(exc: BaseException) -> None:
  print_user_error(exc)
  sys.exit(EXIT_USER_ERROR)


def _exit_interrupted(exc: KeyboardInterrupt) -> None:
  """Ctrl-C: one line (what the command says about it), exit code 130."""
  text = " ".join(str(exc).split())
  sys.stdout.flush()
  print(f"interrupted: {text}" if text else "interrupted", file=sys.stderr,
        flush=True)
  sys.exit(EXIT_INTERRUPTED)


def wrap_flags_parser(
    flags_parser: Optional[Callable[[Sequence[str]], Any]] = None,
) -> Callable[[Sequence[str]], Any]:
  """A flags parser whose errors (unknown flag, bad value) are one line."""
  parse = flags_parser or flags.FLAGS

  def parser(argv: Sequence[str]) -> Any:
    try:
      return parse(list(argv))
    except flags.Error as exc:
      _exit_user_error(exc)

  return parser


def wrap_main(
    main: Callable[[Sequence[str]], Any]) -> Callable[[Sequence[str]], Any]:
  """`main` with the error convention (see the module docstring)."""

  def wrapped(argv: Sequence[str]) -> Any:
    try:
      return main(argv)
    except USER_ERRORS as exc:
      if wants_traceback():
        raise
      _exit_user_error(exc)
    except KeyboardInterrupt as exc:
      if wants_traceback():
        raise
      _exit_interrupted(exc)

  return wrapped


def run(main: Callable[[Sequence[str]], Any], *, name: str,
        flags_parser: Optional[Callable[[Sequence[str]], Any]] = None,
        capture_logs: bool = True) -> None:
  """`absl.app.run` with the error convention and log capture.

  Args:
    main: the entry point's `main(argv)`.
    name: the command's short name, for its log file (`logs/<name>.log`).
    flags_parser: absl flags parser (e.g. `gin_flags.flags_parser`).
    capture_logs: send third-party logs to a file (see the module doc).
  """
  global _CAPTURE
  # Usually started by `capture_early`; else before absl parses the flags:
  # JAX/TensorFlow log (cuInit, ...) as soon as absl's logging is set up.
  if not capture_logs and _CAPTURE is not None:
    _CAPTURE.close()
    _CAPTURE = None
  elif capture_logs and _CAPTURE is None and _should_capture(sys.argv):
    _CAPTURE = LogCapture(name)
  succeeded = False
  try:
    app.run(wrap_main(main),
            flags_parser=wrap_flags_parser(flags_parser))
  except SystemExit as exc:
    succeeded = exc.code in (None, 0)
    raise
  finally:
    if _CAPTURE is not None:
      # A log left in the temporary folder is kept only after a failure.
      _CAPTURE.close(keep=not succeeded)
      _CAPTURE = None


def next_command(*lines: str) -> str:
  """'next: <command>' lines for the end of a command's output."""
  return "\n".join(f"next: {line}" for line in lines)


# ---------------------------------------------------------------------------
# The commands a command suggests next.
# ---------------------------------------------------------------------------

# The bundled sample data (a path, not an import: `crs_tasks` is upstairs).
SAMPLE_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "crs_tasks",
    "sample_data")


def gin_string(value: str) -> str:
  """A gin string literal as one shell word: `"'value'"`."""
  return shlex.quote(repr(value)) if "'" in value else f"\"'{value}'\""


def eval_command(checkpoint_path: str,
                 mixture_or_task_name: Optional[str] = None,
                 lengths: Optional[Mapping[str, int]] = None,
                 probe_dir: Optional[str] = None) -> str:
  """The `python -m eval.main` command that evaluates a checkpoint.

  It evaluates the mixture's ReDial task (a Task is taken as it is; None
  leaves eval.gin's default); on the bundled sample (`crs_sample_*`) it
  adds the bundled movie list and probes and 100 examples.

  Args:
    checkpoint_path: the run directory or one checkpoint.
    mixture_or_task_name: what the checkpoint was trained on.
    lengths: its TASK_FEATURE_LENGTHS (`inputs`, `targets` are kept).
    probe_dir: PROBE_DIR (default: the bundled probes on the sample, else
      none).

  Returns:
    The command line, paths relative to the current directory.
  """
  task = mixture_or_task_name
  if isinstance(task, str):
    import seqio  # pylint: disable=g-import-not-at-top  (this module is light)
    if task in seqio.MixtureRegistry.names():
      names = [t.name for t in errors.get_subtasks(task)]
      task = next((n for n in names if "redial" in n), names[0])
  parts = ["python -m eval.main --gin_file=gin/runs/eval.gin",
           f"--gin.CHECKPOINT_PATH={gin_string(checkpoint_path)}"]
  if isinstance(task, str):
    parts.append(f"--gin.MIXTURE_OR_TASK_NAME={gin_string(task)}")
  if isinstance(lengths, Mapping):
    parts.append("--gin.TASK_FEATURE_LENGTHS=\"" + repr(
        {k: lengths[k] for k in ("inputs", "targets") if k in lengths}) + "\"")
  if isinstance(task, str) and task.startswith("crs_sample_"):
    parts += [
        "--gin.NUM_EXAMPLES=100",
        "--gin.MOVIE_LIST=" + gin_string(os.path.relpath(os.path.join(
            SAMPLE_DATA, "redial", "movies_with_mentions.csv")))]
    probe_dir = probe_dir or os.path.relpath(
        os.path.join(SAMPLE_DATA, "probes"))
  if probe_dir:
    parts.append(f"--gin.PROBE_DIR={gin_string(probe_dir)}")
  return " ".join(parts)
