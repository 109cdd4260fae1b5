r"""tcmalloc for our commands on Linux, where the machine has it.

XLA:CPU takes the temporaries of each executable run from malloc: one
block of about 0.5 GB per train step of the mini T5. glibc serves a block
that large with `mmap` and unmaps it on `free` (its mmap threshold cannot
be raised above 32 MiB, and a thread's arena falls back to `mmap` even
with `M_MMAP_MAX=0`), so every step faults ~560 MB of fresh zeroed pages
back in: on 2 cores, 0.22 s of kernel time in a 0.34 s step.
tcmalloc keeps freed memory for the next step: no page faults, the step
takes 0.22 s (bench/mixed_precision.py prints the allocator; the README
has the figures). PyTorch's CPU allocator has the same problem and the
same cure, so the Hugging Face side of every bench runs under the same
allocator as ours.

A process cannot change its malloc once it runs, so an entry point run as
`python -m train.main ...` re-executes itself once, before its heavy
imports, with tcmalloc in `LD_PRELOAD` (`crs_runtime.cli.capture_early`
calls `maybe_reexec`). Nothing happens

* where tcmalloc is already loaded, or no tcmalloc library is found
  (`sudo apt install libtcmalloc-minimal4` on Debian/Ubuntu; or
  `$CRS_TCMALLOC=/path/to/libtcmalloc.so`);
* with `CRS_MALLOC=system` (keep the system allocator);
* outside Linux, and in library use, tests and t5x (only our commands'
  mains call it).
"""

import ctypes.util
import glob
import os
import sys
from typing import Mapping, Optional, Sequence

CHOICE_ENV = "CRS_MALLOC"  # "tcmalloc" (default) or "system".
PATH_ENV = "CRS_TCMALLOC"  # An explicit library path.
# Set in the re-executed process: never re-execute twice.
DONE_ENV = "CRS_MALLOC_REEXEC"
CHOICES = ("tcmalloc", "system")
_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4",
          "libtcmalloc_minimal.so", "libtcmalloc.so")
_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
         "/usr/lib64", "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib")


def choice(environ: Mapping[str, str]) -> str:
  """`CRS_MALLOC`, checked: 'tcmalloc' (the default) or 'system'."""
  value = environ.get(CHOICE_ENV, "").strip().lower() or "tcmalloc"
  if value not in CHOICES:
    raise ValueError(f"{CHOICE_ENV}={environ[CHOICE_ENV]!r}: expected one "
                     f"of {', '.join(CHOICES)}")
  return value


def find_tcmalloc(environ: Mapping[str, str] = os.environ) -> Optional[str]:
  """The path of a tcmalloc shared library, or None."""
  explicit = environ.get(PATH_ENV, "").strip()
  if explicit:
    return explicit if os.path.isfile(explicit) else None
  for directory in _DIRS:
    for name in _NAMES:
      path = os.path.join(directory, name)
      if os.path.isfile(path):
        return path
  for name in ("tcmalloc_minimal", "tcmalloc"):
    found = ctypes.util.find_library(name)
    if found:
      paths = [os.path.join(d, found) for d in _DIRS] + glob.glob(
          f"/usr/lib/*/{found}")
      for path in paths:
        if os.path.isfile(path):
          return path
  return None


def loaded() -> bool:
  """Whether this process runs with a tcmalloc library mapped."""
  try:
    with open("/proc/self/maps") as maps:
      return "tcmalloc" in maps.read()
  except OSError:
    return False


def in_use() -> str:
  """'tcmalloc' or 'system': this process's allocator, for bench output."""
  return "tcmalloc" if loaded() else "system"


def reexec_env(environ: Mapping[str, str], library: Optional[str],
               platform: str = sys.platform,
               already_loaded: bool = False) -> Optional[dict[str, str]]:
  """The environment to re-execute with, or None to run on as is.

  Args:
    environ: this process's environment.
    library: `find_tcmalloc()`.
    platform: `sys.platform`.
    already_loaded: `loaded()`.

  Returns:
    `environ` with `library` first in `LD_PRELOAD` (other entries kept)
    and `CRS_MALLOC_REEXEC=1`; None where nothing is to be done.
  """
  if (not platform.startswith("linux") or already_loaded or not library
      or environ.get(DONE_ENV) or choice(environ) == "system"):
    return None
  preload = [library] + _preloads(environ)
  return dict(environ, LD_PRELOAD=" ".join(preload), **{DONE_ENV: "1"})


def system_env(environ: Mapping[str, str]) -> dict[str, str]:
  """`environ` for a child process on the system allocator: tcmalloc taken
  out of `LD_PRELOAD` (other entries kept) and `CRS_MALLOC=system`."""
  preload = [p for p in _preloads(environ) if "tcmalloc" not in p]
  return dict(environ, LD_PRELOAD=" ".join(preload), **{CHOICE_ENV: "system"})


def _preloads(environ: Mapping[str, str]) -> list[str]:
  """The libraries in `LD_PRELOAD` (separated by spaces or colons)."""
  return environ.get("LD_PRELOAD", "").replace(":", " ").split()


def maybe_reexec(argv: Optional[Sequence[str]] = None) -> None:
  """Re-executes this command under tcmalloc where `reexec_env` says so.

  Call it before heavy imports: `os.execve` replaces the process (same
  PID, same open files), which then starts again from the top.

  Args:
    argv: the command line to run again; default `sys.orig_argv` (the
      interpreter, its options, `-m module` and the command's flags).
  """
  try:
    env = reexec_env(os.environ, find_tcmalloc(), already_loaded=loaded())
  except ValueError as exc:  # A typo in CRS_MALLOC: run on, say so.
    sys.stderr.write(f"warning: {exc}; keeping the system allocator\n")
    return
  if env is None:
    return
  argv = list(argv if argv is not None else sys.orig_argv)
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, [sys.executable] + argv[1:], env)
  except OSError:
    # E.g. a user who may run this interpreter but not exec it again by
    # this path (seen as user nobody with a venv under /tmp): the process
    # is unchanged, so run on with the system allocator.
    pass
