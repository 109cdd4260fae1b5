"""Several processes, one job: JAX's multi-controller runtime for train/eval.

On a TPU pod slice, several GPU hosts, or (to try it out) several processes on
one machine, every process runs the same command. `initialize` joins them
(`jax.distributed.initialize`, with a bounded wait and an error that names
the fix instead of a hang); then `jax.devices()` lists every process's devices
and the ('data', 'model') mesh of `train/partitioning.py` spans them all.

What each process does, as in t5x:

- Input: `data_layout` says which rows of every global batch this process
  builds and which input shards (`seqio.ShardInfo`) it reads for them (t5x's
  `Partitioner.get_data_layout`). Processes whose devices hold the same
  batch rows (model parallelism across hosts) read the same shards.
  `global_batch` assembles the processes' rows into one global jax.Array
  (`jax.make_array_from_process_local_data`).
- Files: every process takes part in orbax saves and restores; everything
  else that exists once (config.gin, model_config.json, the vocabulary,
  TensorBoard summaries, the progress line, eval outputs) is written by
  `is_primary()` (process 0) only.
- Evaluation: `process_slice` gives each process a contiguous part of the
  examples and `allgather_objects` brings the results back, in order.

With one process every function here is the identity of the single-process
code path (one shard, the whole batch, no collectives).
"""

import dataclasses
import os
import pickle
import socket
import sys
import threading
import time
from typing import Any, Optional

from absl import flags
import jax
import numpy as np


PyTree = Any

flags.DEFINE_bool(
    "multiprocess", False,
    "Join JAX's distributed runtime before anything else. On a TPU pod "
    "slice, under Slurm or Open MPI this is all that is needed (JAX detects "
    "the coordinator, process count and index); elsewhere also pass "
    "--coordinator_address, --process_count and --process_index.")
flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0, reachable from every process (implies "
    "--multiprocess).")
flags.DEFINE_integer("process_count", None, "Number of processes.")
flags.DEFINE_integer("process_index", None,
                     "This process's index, 0 .. process_count - 1.")
flags.DEFINE_integer(
    "initialization_timeout", 300,
    "Seconds to wait for every process to join before failing.")

# Extra seconds JAX waits past our own deadline, so that our message (not
# JAX's abort) is what a failed start prints.
_JAX_GRACE_S = 10


def _user_error(what: str, **kwargs: Any) -> Exception:
  """A `crs_runtime.errors.UserError`, imported when one is raised.

  (Importing `crs_tasks` registers every Task, which `train/` does not need.)
  """
  from crs_runtime import errors  # pylint: disable=g-import-not-at-top
  return errors.UserError(what, **kwargs)


# ---------------------------------------------------------------------------
# Joining the processes.
# ---------------------------------------------------------------------------


def initialize_from_flags() -> None:
  """`initialize` with the absl flags above, if they ask for several processes.

  Call it first in a `main`, before anything touches a JAX device.
  """
  f = flags.FLAGS
  if not (f.multiprocess or f.coordinator_address
          or (f.process_count or 1) > 1):
    return
  initialize(f.coordinator_address, f.process_count, f.process_index,
             timeout_s=f.initialization_timeout)


def initialize(
    coordinator_address: Optional[str] = None,
    process_count: Optional[int] = None,
    process_index: Optional[int] = None,
    *,
    timeout_s: int = 300,
) -> None:
  """Joins JAX's distributed runtime, or fails within `timeout_s` seconds.

  Arguments left None are detected by JAX (TPU pod slices, Slurm, Open MPI).
  CPU processes exchange data with gloo collectives.

  Args:
    coordinator_address: `host:port` of process 0.
    process_count: number of processes.
    process_index: this process's index.
    timeout_s: how long to wait for the coordinator and the other processes.

  Raises:
    errors.UserError: bad arguments, the coordinator's port is taken, or the
      coordinator cannot be reached in time. If the coordinator is reached but
      the other processes do not all join in time, the process prints the
      same kind of one-line message and exits with code 2 (JAX's wait cannot
      be interrupted from Python).
  """
  if process_count is not None and process_index is not None and not (
      0 <= process_index < process_count):
    raise _user_error(
        f"process index {process_index} is not in 0..{process_count - 1}",
        where="--process_index",
        fix="give each of the --process_count processes its own index "
        "0, 1, ... (process 0 hosts the coordinator)")
  deadline = time.monotonic() + timeout_s
  if coordinator_address and process_index is not None:
    host, port = _split_address(coordinator_address)
    if process_index == 0:
      _check_port_free(coordinator_address, port)
    else:
      _wait_for_coordinator(coordinator_address, host, port, deadline)
  role = {None: "this process", 0: "process 0 (the coordinator)"}.get(
      process_index, f"process {process_index}")
  watchdog = threading.Timer(
      max(deadline - time.monotonic(), 1.0), _give_up, args=(_user_error(
          f"{role} waited {timeout_s} s for all {process_count or '?'} "
          f"processes to join the coordinator at "
          f"{coordinator_address or '(auto-detected)'}",
          where="jax.distributed.initialize",
          fix="start every process with the same --coordinator_address and "
          "--process_count and its own --process_index, or raise "
          "--initialization_timeout"),))
  watchdog.daemon = True
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  watchdog.start()
  try:
    jax.distributed.initialize(
        coordinator_address, process_count, process_index,
        initialization_timeout=timeout_s + _JAX_GRACE_S)
  except ValueError as e:  # Nothing given and nothing detected.
    raise _user_error(
        str(e), where="jax.distributed.initialize",
        fix="pass --coordinator_address=HOST:PORT --process_count=N "
        "--process_index=I (auto-detection covers only TPU pod slices, "
        "Slurm and Open MPI)") from e
  finally:
    watchdog.cancel()


def _split_address(address: str) -> tuple[str, int]:
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise _user_error(
        f"coordinator address {address!r} is not host:port",
        where="--coordinator_address", fix="e.g. 10.0.0.2:8476")
  return host.strip("[]"), int(port)


def _check_port_free(address: str, port: int) -> None:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    try:
      s.bind(("", port))
    except OSError as e:
      raise _user_error(
          f"process 0 cannot host the coordinator at {address}: port {port} "
          f"is in use ({e.strerror})", where="--coordinator_address",
          fix="pick a free port (or stop the old run that holds it)") from e


def _wait_for_coordinator(address: str, host: str, port: int,
                          deadline: float) -> None:
  """Polls until a TCP connection to the coordinator succeeds."""
  while True:
    try:
      with socket.create_connection((host, port), timeout=1.0):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise _user_error(
            f"cannot reach the coordinator at {address} ({e.strerror or e})",
            where="--coordinator_address",
            fix="start process 0 with the same --coordinator_address, check "
            "that this host can reach that address and port, or raise "
            "--initialization_timeout") from e
      time.sleep(0.2)


def _give_up(error: Exception) -> None:
  # As crs_runtime.cli prints a user error: one line, exit code 2.
  print("error: " + " ".join(str(error).split()), file=sys.stderr,
        flush=True)
  os._exit(2)  # pylint: disable=protected-access


# ---------------------------------------------------------------------------
# Roles.
# ---------------------------------------------------------------------------


def is_primary() -> bool:
  """True on process 0, the one that writes files that exist once."""
  return jax.process_index() == 0


# ---------------------------------------------------------------------------
# Input: who reads what.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataLayout:
  """Which rows of each global batch this process builds, from which shards.

  The global batch is `num_shards` blocks of `shard_batch_size` rows; block
  s comes from input shard s (`seqio.ShardInfo(s, num_shards)`). This process
  builds the blocks `shard_ids` (contiguous), i.e. its `local_batch_size`
  rows of the global batch.

  Evaluation data, which need not match another run's batches, is read one
  shard per data-parallel group: shard `group_index` of `num_groups`.

  Attributes:
    global_batch_size: rows of a global batch.
    num_shards: input shards the global batch is made of.
    shard_ids: the shards this process reads, in order.
    group_index: this process's data-parallel group.
    num_groups: data-parallel groups (processes, unless model parallelism
      spans hosts).
  """

  global_batch_size: int
  num_shards: int
  shard_ids: tuple[int, ...]
  group_index: int = 0
  num_groups: int = 1

  @property
  def shard_batch_size(self) -> int:
    return self.global_batch_size // self.num_shards

  @property
  def local_batch_size(self) -> int:
    return self.shard_batch_size * len(self.shard_ids)


def data_layout(
    mesh: jax.sharding.Mesh,
    global_batch_size: int,
    num_input_shards: Optional[int] = None,
    process_index: Optional[int] = None,
) -> DataLayout:
  """This process's part of the input, from where the mesh puts batch rows.

  Batches are split over the mesh's 'data' axis. Processes whose devices hold
  the same 'data' positions form one data-parallel group (several processes
  only when model parallelism spans hosts) and build the same rows. By
  default each group reads one input shard; `num_input_shards` (a multiple of
  the number of groups) fixes the global batches' composition whatever the
  number of processes: a 1-process run with `num_input_shards=2` sees the
  batches of a 2-process run, and a run can resume on another process count.

  Args:
    mesh: the ('data', 'model') mesh over all processes' devices.
    global_batch_size: rows of a global batch.
    num_input_shards: input shards (None: one per data-parallel group).
    process_index: defaults to `jax.process_index()`.

  Returns:
    The layout.

  Raises:
    errors.UserError: the batch does not divide over the 'data' axis, the
      processes, or the input shards.
  """
  if process_index is None:
    process_index = jax.process_index()
  data_size = mesh.shape["data"]
  groups = _data_groups(mesh)
  num_groups = len(groups)
  if global_batch_size % data_size:
    n = jax.process_count()
    on = f" across {n} processes" if n > 1 else ""
    raise _user_error(
        f"the global batch of {global_batch_size} rows does not divide "
        f"over the mesh's {data_size}-way 'data' axis{on}",
        where="BATCH_SIZE",
        fix=f"use a multiple of {data_size} (each of {num_groups} process "
        f"group(s) builds 1/{num_groups} of it), or change the mesh "
        "(NUM_PARTITIONS / MESH_SHAPE)")
  if num_input_shards is None:
    num_input_shards = num_groups
  if num_input_shards < 1 or num_input_shards % num_groups:
    raise _user_error(
        f"{num_input_shards} input shards cannot be split over "
        f"{num_groups} data-parallel process groups",
        where="NUM_INPUT_SHARDS", fix=f"use a multiple of {num_groups}")
  if global_batch_size % num_input_shards:
    raise _user_error(
        f"the global batch of {global_batch_size} rows does not divide "
        f"into {num_input_shards} input shards", where="NUM_INPUT_SHARDS",
        fix="use a number of input shards that divides BATCH_SIZE")
  group = next(i for i, (_, members) in enumerate(groups)
               if process_index in members)
  per_group = num_input_shards // num_groups
  return DataLayout(
      global_batch_size=global_batch_size,
      num_shards=num_input_shards,
      shard_ids=tuple(range(group * per_group, (group + 1) * per_group)),
      group_index=group,
      num_groups=num_groups)


def _data_groups(
    mesh: jax.sharding.Mesh) -> list[tuple[tuple[int, ...], set[int]]]:
  """[(data rows, processes)] per data-parallel group, in row order."""
  rows_of: dict[int, set[int]] = {}
  axis = mesh.axis_names.index("data")
  for index, device in np.ndenumerate(mesh.devices):
    rows_of.setdefault(device.process_index, set()).add(index[axis])
  groups: dict[tuple[int, ...], set[int]] = {}
  for process, rows in rows_of.items():
    groups.setdefault(tuple(sorted(rows)), set()).add(process)
  ordered = sorted(groups.items())
  seen: set[int] = set()
  for rows, _ in ordered:
    if rows != tuple(range(rows[0], rows[0] + len(rows))) or seen & set(rows):
      raise _user_error(
          f"the mesh gives processes overlapping or scattered 'data' rows "
          f"{[r for r, _ in ordered]}", where="MESH_SHAPE",
          fix="order the mesh's devices by process (partitioning.make_mesh "
          "does) so each process holds a contiguous block of rows")
    seen.update(rows)
  return ordered


def global_batch(local_batch: PyTree, sharding: jax.sharding.Sharding,
                 layout: DataLayout) -> PyTree:
  """Assembles every process's rows into global jax.Arrays.

  Args:
    local_batch: this process's `[layout.local_batch_size, ...]` arrays.
    sharding: the batch sharding (leading axis over 'data').
    layout: from `data_layout`.

  Returns:
    The same tree of `[layout.global_batch_size, ...]` jax.Arrays.
  """

  def assemble(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(
        sharding, x, (layout.global_batch_size,) + x.shape[1:])

  return jax.tree.map(assemble, local_batch)


# ---------------------------------------------------------------------------
# Evaluation: split the examples, gather the results.
# ---------------------------------------------------------------------------


def process_slice(num_items: int, process_index: Optional[int] = None,
                  process_count: Optional[int] = None) -> slice:
  """This process's contiguous part of `num_items` (sizes differ by <= 1).

  `process_slice(10, 0, 3) == slice(0, 4)`, then `slice(4, 7)`,
  `slice(7, 10)`.
  """
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  base, extra = divmod(num_items, process_count)
  start = process_index * base + min(process_index, extra)
  return slice(start, start + base + (process_index < extra))


def allgather_objects(obj: Any) -> list[Any]:
  """Every process's `obj` (picklable), in process order, on every process.

  A collective: every process must call it, in the same order.
  """
  if jax.process_count() == 1:
    return [obj]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
  sizes = multihost_utils.process_allgather(np.int64(data.size))
  padded = np.zeros(int(np.max(sizes)), np.uint8)
  padded[:data.size] = data
  gathered = multihost_utils.process_allgather(padded)
  return [pickle.loads(gathered[i, :int(n)].tobytes())
          for i, n in enumerate(np.asarray(sizes).reshape(-1))]


def sync(name: str) -> None:
  """Waits until every process reaches the barrier `name`."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
