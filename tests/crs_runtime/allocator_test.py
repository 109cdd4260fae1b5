"""Tests for crs_runtime.allocator (tcmalloc for our commands)."""

import os
import subprocess
import sys

import pytest

from crs_runtime import allocator
from crs_runtime import cli

LIB = "/usr/lib/libtcmalloc_minimal.so.4"


def test_reexec_env_preloads_tcmalloc_first_and_marks_the_run():
  env = allocator.reexec_env({"LD_PRELOAD": "/a.so:/b.so", "X": "1"}, LIB,
                             platform="linux")
  assert env["LD_PRELOAD"] == f"{LIB} /a.so /b.so"
  assert env[allocator.DONE_ENV] == "1"
  assert env["X"] == "1"


@pytest.mark.parametrize("environ,library,platform,loaded", [
    ({allocator.CHOICE_ENV: "system"}, LIB, "linux", False),
    ({allocator.CHOICE_ENV: " System "}, LIB, "linux", False),
    ({allocator.DONE_ENV: "1"}, LIB, "linux", False),  # never twice
    ({}, None, "linux", False),  # no tcmalloc on the machine
    ({}, LIB, "darwin", False),
    ({}, LIB, "linux", True),  # already loaded (e.g. by the user)
])
def test_reexec_env_leaves_the_process_alone(environ, library, platform,
                                             loaded):
  assert allocator.reexec_env(environ, library, platform, loaded) is None


def test_system_env_takes_tcmalloc_out_and_keeps_the_rest():
  env = allocator.system_env(
      {"LD_PRELOAD": f"{LIB}:/a.so /b.so", allocator.CHOICE_ENV: "tcmalloc",
       "X": "1"})
  assert env["LD_PRELOAD"] == "/a.so /b.so"
  assert env[allocator.CHOICE_ENV] == "system"
  assert env["X"] == "1"
  assert allocator.reexec_env(env, LIB, platform="linux") is None


def test_a_typo_in_the_choice_is_named():
  with pytest.raises(ValueError, match="CRS_MALLOC='sytem'.*tcmalloc, system"):
    allocator.reexec_env({allocator.CHOICE_ENV: "sytem"}, LIB, "linux")


def test_find_tcmalloc_honours_an_explicit_path(tmp_path):
  lib = tmp_path / "libtcmalloc.so"
  lib.write_bytes(b"")
  assert allocator.find_tcmalloc({allocator.PATH_ENV: str(lib)}) == str(lib)
  assert allocator.find_tcmalloc(
      {allocator.PATH_ENV: str(tmp_path / "missing.so")}) is None


def test_capture_early_reexecs_only_our_commands(monkeypatch):
  calls = []
  monkeypatch.setattr(allocator, "maybe_reexec", lambda: calls.append(1))
  monkeypatch.setenv(cli.LOGS_ENV, "stderr")  # no log capture here
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pytest", "x"])
  cli.capture_early()
  assert not calls
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "eval.report"])
  cli.capture_early()
  assert calls == [1]


_PROBE = ("import os; from crs_runtime import allocator; "
          "allocator.maybe_reexec(); "
          "print(allocator.in_use(), os.environ.get('CRS_MALLOC_REEXEC'))")


def _run(env):
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  env = dict(env, PYTHONPATH=root)
  env.pop("LD_PRELOAD", None)
  return subprocess.run([sys.executable, "-c", _PROBE], env=env,
                        capture_output=True, text=True, check=True,
                        timeout=60).stdout.split()


@pytest.mark.skipif(allocator.find_tcmalloc() is None,
                    reason="no tcmalloc on this machine (apt install "
                    "libtcmalloc-minimal4)")
def test_a_process_reexecs_once_under_tcmalloc():
  env = {k: v for k, v in os.environ.items()
         if not k.startswith("CRS_MALLOC")}
  assert _run(env) == ["tcmalloc", "1"]
  assert _run(dict(env, CRS_MALLOC="system")) == ["system", "None"]


def test_no_reexec_without_a_library(tmp_path):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith("CRS_MALLOC")}
  env[allocator.PATH_ENV] = str(tmp_path / "missing.so")
  assert _run(env) == ["system", "None"]


def test_a_failed_reexec_runs_on_with_the_system_allocator(monkeypatch):
  """execve refused (seen in CI as user nobody): the command goes on."""
  calls = []

  def refuse(*args):
    calls.append(args)
    raise PermissionError(13, "Permission denied", args[0])

  monkeypatch.setattr(allocator.os, "execve", refuse)
  monkeypatch.setattr(allocator, "find_tcmalloc", lambda: LIB)
  monkeypatch.setattr(allocator, "loaded", lambda: False)
  monkeypatch.setattr(allocator.sys, "platform", "linux")
  for name in (allocator.CHOICE_ENV, allocator.DONE_ENV):
    monkeypatch.delenv(name, raising=False)
  allocator.maybe_reexec(["python", "-m", "train.main"])
  assert len(calls) == 1 and calls[0][1][1:] == ["-m", "train.main"]
