"""Gin flags shared by the entry points (t5x-style `--gin.NAME=VALUE`).

`python -m train.main --gin_file=runs/finetune.gin --gin.MODEL_DIR="'/tmp/m'"`
works as in t5x: `--gin.X=V` is rewritten to `--gin_bindings=X=V` before absl
parses the flags. Gin files are searched in the working directory, the
repository root and the repository's `gin/` directory, so includes such as
`include 'models/t5_1_1_tiny.gin'` work from anywhere.
"""

import ast
import inspect
import logging
import os
import re
import sys
import tokenize
from typing import Any, Iterator, Mapping, Optional, Sequence

from absl import flags
import gin

from crs_runtime import errors

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_DIR = os.path.join(REPO_ROOT, "gin")

flags.DEFINE_multi_string("gin_file", [], "Gin files to parse, in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings.")
flags.DEFINE_multi_string(
    "gin_search_paths", [], "Extra directories to search for gin files.")
flags.DEFINE_multi_string(
    "seqio_additional_cache_dirs", [],
    "Directories holding seqio caches (for USE_CACHED_TASKS = True).")


class _QuietSearchFilter(logging.Filter):
  """Drops gin's "Path not found" log for each search path it tries.

  A file found on no search path still raises an error naming it.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Path not found")


def rewrite_gin_args(argv: Sequence[str]) -> list[str]:
  """['--gin.A=1'] -> ['--gin_bindings=A=1'] (other arguments unchanged)."""
  out = []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      out.append(f"--gin_bindings={name} = {value}")
    else:
      out.append(arg)
  return out


def flags_parser(argv: Sequence[str]) -> list[str]:
  """absl `flags_parser` that understands `--gin.NAME=VALUE`."""
  return flags.FLAGS(rewrite_gin_args(argv))


def _gin_user_error(exc: Exception, source: str) -> errors.UserError:
  """A gin parse error of the user's files or bindings, as a UserError."""
  text = " ".join(str(exc).split("In bindings string")[0].split())
  match = re.search(r"Configurable '([\w.]+)' doesn't have a parameter named "
                    r"'(\w+)'", text)
  if match:
    hint = errors.did_you_mean(match.group(2), _parameters(match.group(1)))
    if hint:
      text = f"{text}; {hint}"
  return errors.UserError(text, where=source)


def _parameters(selector: str) -> list[str]:
  """The parameter names of a registered configurable (for suggestions)."""
  try:
    configurable = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
    return list(inspect.signature(configurable.wrapped).parameters)
  except Exception:  # pylint: disable=broad-except
    return []


def _walk_references(value: Any) -> Iterator[Any]:
  if isinstance(value, gin.config.ConfigurableReference):
    yield value
  elif isinstance(value, dict):
    for v in value.values():
      yield from _walk_references(v)
  elif isinstance(value, (list, tuple, set)):
    for v in value:
      yield from _walk_references(v)


def _macro_name(reference: Any) -> Optional[str]:
  """'X' for a `%X` reference, else None."""
  scoped = getattr(reference, "_scoped_selector", "") or ""
  if scoped.endswith("/gin.macro"):
    return scoped[: -len("/gin.macro")]
  return None


def _config() -> dict[tuple[str, str], dict[str, Any]]:
  return gin.config._CONFIG  # pylint: disable=protected-access


def defined_macros() -> set[str]:
  """Macros the parsed config defines (`NAME = value`) or refers to (`%NAME`).

  A macro that is only referred to (e.g. `MODEL`, defined by a model file
  that was not parsed) may still be set by an override.
  """
  names = {scope for scope, selector in _config() if selector == "gin.macro"}
  for bindings in _config().values():
    for value in bindings.values():
      names.update(filter(None, map(_macro_name, _walk_references(value))))
  return names


def required_macros() -> list[str]:
  """Macros still bound to `%gin.REQUIRED`, in definition order."""
  out = []
  for (scope, selector), bindings in _config().items():
    value = bindings.get("value")
    if selector == "gin.macro" and isinstance(
        value, gin.config.ConfigurableReference) and getattr(
            value, "_scoped_selector", "") == "gin.REQUIRED/gin.constant":
      out.append(scope)
  return out


# Example values of REQUIRED macros, for the message that asks for them.
EXAMPLE_VALUES = {
    "MODEL_DIR": "\"'/tmp/t5cr_run'\"",
    "CHECKPOINT_PATH": "\"'/tmp/t5cr_run'\"",
    "MIXTURE_OR_TASK_NAME": "\"'crs_sample_t5cr_v002'\"",
    "TASK_FEATURE_LENGTHS": "\"{'inputs': 512, 'targets': 128}\"",
    "TRAIN_STEPS": "1000",
    "INFER_OUTPUT_DIR": "\"'/tmp/t5cr_run/infer'\"",
    "EVAL_OUTPUT_DIR": "\"'/tmp/t5cr_run/eval'\"",
    "INITIAL_CHECKPOINT_PATH": "\"'/ckpt/t5-v1_1-base'\"",
    "MODEL": "... (a model file: --gin_file=models/t5_1_1_small.gin)",
}


def check_required_macros() -> None:
  """Raises a UserError naming the first REQUIRED macro left unset."""
  defined = {scope for scope, selector in _config() if selector == "gin.macro"}
  unset = [n for n in sorted(defined_macros() - defined)]
  for name in required_macros() + unset:
    value = EXAMPLE_VALUES.get(name, "...")
    raise errors.UserError(
        f"gin macro {name} is required and was not set",
        fix=f"add --gin.{name}={value}")


def _split_binding(binding: str) -> tuple[str, str]:
  name, _, value = binding.partition("=")
  return name.strip(), value.strip()


def _statement(binding: str) -> Any:
  """The gin BindingStatement of one `--gin_bindings` string, or None."""
  try:
    parser = gin.config_parser.ConfigParser(binding,
                                            gin.config.ParserDelegate())
    return next(iter(parser), None)
  except (SyntaxError, tokenize.TokenError) as exc:
    raise errors.UserError(
        f"cannot parse gin binding {binding!r}: {' '.join(str(exc).split())}",
        fix="write NAME=VALUE with a Python literal value; strings need "
        "inner quotes: --gin.MODEL_DIR=\"'/tmp/run'\"") from exc
  except ValueError:
    return None  # e.g. a scoped or imported selector gin will check itself.


def _apply_deprecated(binding: str, old: str, new: str) -> list[str]:
  """Bindings that replace the deprecated macro `old` by `new`.

  `new` is a macro name, or `MACRO['key']` for one entry of a dict macro
  (then the binding is applied on top of the macro's current value).
  """
  _, value = _split_binding(binding)
  print(f"warning: gin macro {old} is deprecated; use {new} "
        f"(read --gin.{old}={value} as {new}={value})", file=sys.stderr,
        flush=True)
  match = re.fullmatch(r"(\w+)\['(\w+)'\]", new)
  if not match:
    return [f"{new} = {value}"]
  macro, key = match.groups()
  try:
    current = dict(gin.query_parameter(f"%{macro}") or {})
  except (ValueError, TypeError):
    current = {}
  try:
    current[key] = ast.literal_eval(value)
  except (ValueError, SyntaxError) as exc:
    raise errors.UserError(
        f"--gin.{old}={value} is not a literal", where=old) from exc
  return [f"{macro} = {current!r}"]


def check_bindings(
    gin_bindings: Sequence[str],
    deprecated_macros: Optional[Mapping[str, str]] = None,
) -> list[str]:
  """Checks overrides against the parsed gin files; returns what to apply.

  A macro override (`NAME = value`) must name a macro that a parsed gin file
  defines or refers to (a typo like `TRAIN_STEPZ` is an error with close
  matches, not a new macro). Deprecated macro names are rewritten with a
  one-line warning.

  Args:
    gin_bindings: `NAME = value` strings, in order.
    deprecated_macros: old macro name -> new name (or `NEW['key']`).

  Returns:
    The bindings to parse, with the deprecated names rewritten.

  Raises:
    errors.UserError: an unknown macro or an unparsable binding.
  """
  deprecated_macros = deprecated_macros or {}
  known = defined_macros()
  statements = [(b, _statement(b)) for b in gin_bindings]
  for _, statement in statements:  # Macros defined for other overrides.
    if statement is not None:
      known.update(filter(None, map(_macro_name,
                                    _walk_references(statement.value))))
  out = []
  for binding, statement in statements:
    is_macro = statement is not None and not statement.arg_name and (
        not statement.scope and "." not in statement.selector)
    if not is_macro:
      out.append(binding)
      continue
    name = statement.selector
    if name in deprecated_macros:
      out.extend(_apply_deprecated(binding, name, deprecated_macros[name]))
      continue
    if name not in known:
      _, value = _split_binding(binding)
      hint = errors.did_you_mean(name, known)
      what = f"unknown gin macro {name} (from --gin.{name}={value})"
      raise errors.UserError(
          f"{what}; {hint}" if hint else what,
          fix=None if hint else "no parsed gin file defines it; check the "
          "name, or define it in a gin file")
    out.append(binding)
  return out


def parse_gin(
    gin_files: Sequence[str],
    gin_bindings: Sequence[str] = (),
    search_paths: Optional[Sequence[str]] = None,
    finalize: bool = True,
    deprecated_macros: Optional[Mapping[str, str]] = None,
) -> None:
  """Parses gin files and bindings with the repository's search paths.

  The files are parsed first; then each binding is checked against them
  (`check_bindings`: unknown macros are errors) and applied. A gin file
  that is missing or does not parse, and a binding gin rejects, raise
  `errors.UserError` (one line at the entry points).

  Args:
    gin_files: files (absolute, or relative to a search path).
    gin_bindings: bindings applied after the files, e.g. `MODEL_DIR='/tmp'`.
    search_paths: extra search paths, searched first.
    finalize: check that no macro is left REQUIRED or unset
      (`check_required_macros`), then lock the config.
    deprecated_macros: old macro name -> new name, accepted with a warning.
  """
  root_logger = logging.getLogger()
  if not any(isinstance(f, _QuietSearchFilter) for f in root_logger.filters):
    root_logger.addFilter(_QuietSearchFilter())
  for path in [GIN_DIR, REPO_ROOT, os.getcwd(), *(search_paths or ())][::-1]:
    gin.add_config_file_search_path(path)
  for path in gin_files:
    try:
      gin.parse_config_file(path)
    except (OSError, SyntaxError, ValueError) as exc:
      raise _gin_user_error(exc, f"--gin_file={path}") from exc
  bindings = check_bindings(gin_bindings, deprecated_macros)
  for binding in bindings:
    try:
      gin.parse_config(binding)
    except (SyntaxError, ValueError, tokenize.TokenError) as exc:
      raise _gin_user_error(exc, f"--gin_bindings={binding}") from exc
  if finalize:
    check_required_macros()
    gin.finalize()


def parse_from_flags(
    deprecated_macros: Optional[Mapping[str, str]] = None,
) -> None:
  """`parse_gin` with the values of the absl flags (and seqio cache dirs)."""
  if not flags.FLAGS.gin_file:
    raise errors.UserError(
        "no gin file given",
        fix="add --gin_file=..., e.g. "
        "--gin_file=gin/experiments/sample_tiny.gin")
  if flags.FLAGS.seqio_additional_cache_dirs:
    import seqio  # pylint: disable=g-import-not-at-top  (keeps this light)
    seqio.add_global_cache_dirs(flags.FLAGS.seqio_additional_cache_dirs)
  parse_gin(
      flags.FLAGS.gin_file,
      flags.FLAGS.gin_bindings,
      flags.FLAGS.gin_search_paths,
      deprecated_macros=deprecated_macros,
  )
