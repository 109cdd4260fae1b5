"""Tests for train/distributed.py: data layouts, bad setups, joining.

Data layouts are computed on fake meshes (devices are only asked for their
`process_index`), so 2- and 4-process layouts are checked in one process;
tests/train/multihost_test.py runs real processes.
"""

import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from crs_runtime import errors
from train import distributed
from train import partitioning

ROOT = __file__.rsplit("/tests/", 1)[0]


def _mesh(shape, processes):
  """A ('data', 'model') mesh whose devices belong to processes in order."""
  n = shape[0] * shape[1]
  devices = np.array(
      [types.SimpleNamespace(id=i, process_index=i * processes // n,
                             platform="cpu")
       for i in range(n)], dtype=object).reshape(shape)
  return types.SimpleNamespace(
      shape={"data": shape[0], "model": shape[1]},
      axis_names=("data", "model"), devices=devices)


def _layouts(shape, processes, batch, shards=None):
  mesh = _mesh(shape, processes)
  return [distributed.data_layout(mesh, batch, shards, process_index=p)
          for p in range(processes)]


def test_one_input_shard_per_process_by_default():
  first, second = _layouts((4, 2), 2, 8)
  assert (first.shard_ids, second.shard_ids) == ((0,), (1,))
  assert first.num_shards == 2 and first.local_batch_size == 4
  assert (first.group_index, second.group_index, first.num_groups) == (
      0, 1, 2)


def test_more_input_shards_than_processes():
  first, second = _layouts((4, 2), 2, 8, shards=4)
  assert (first.shard_ids, second.shard_ids) == ((0, 1), (2, 3))
  assert first.shard_batch_size == 2 and first.local_batch_size == 4
  # One process reading the 4 shards builds the same global batch.
  (alone,) = _layouts((8, 1), 1, 8, shards=4)
  assert alone.shard_ids == (0, 1, 2, 3) and alone.local_batch_size == 8


def test_model_parallel_across_hosts_shares_shards():
  # 'model' spans both processes: both hold the one 'data' row, so both
  # read the same (only) shard and build the whole batch.
  first, second = _layouts((1, 8), 2, 8)
  assert first.shard_ids == second.shard_ids == (0,)
  assert first.local_batch_size == 8 and first.num_groups == 1
  # 4 processes of 2 devices on a 2x4 mesh: two groups of two processes.
  layouts = _layouts((2, 4), 4, 8)
  assert [l.shard_ids for l in layouts] == [(0,), (0,), (1,), (1,)]
  assert [l.local_batch_size for l in layouts] == [4] * 4


def test_one_process_is_the_single_process_layout():
  (layout,) = _layouts((1, 1), 1, 16)
  assert layout == distributed.DataLayout(16, 1, (0,), 0, 1)


@pytest.mark.parametrize("shape,processes,batch,shards,where,match", [
    ((4, 2), 2, 6, None, "BATCH_SIZE", r"6 rows does not divide over the "
     r"mesh's 4-way 'data' axis.*Fix: use a multiple of 4"),
    ((4, 2), 2, 8, 3, "NUM_INPUT_SHARDS", "3 input shards cannot be split "
     "over 2 data-parallel process groups"),
    ((4, 2), 2, 8, 16, "NUM_INPUT_SHARDS", "does not divide into 16"),
])
def test_batches_that_do_not_divide_name_the_fix(shape, processes, batch,
                                                 shards, where, match):
  with pytest.raises(errors.UserError, match=match) as e:
    _layouts(shape, processes, batch, shards)
  assert e.value.where == where and e.value.fix


def test_mesh_that_does_not_fit_the_devices_names_the_fix():
  with pytest.raises(errors.UserError, match=r"needs 64 devices.*Fix: make "
                     r"data x model = 1") as e:
    partitioning.make_mesh(mesh_shape=(8, 8))
  assert e.value.where == "MESH_SHAPE"
  with pytest.raises(errors.UserError, match="NUM_PARTITIONS=3"):
    partitioning.make_mesh(num_partitions=3, devices=_mesh((2, 1), 1)
                           .devices.reshape(-1).tolist())
  # With several processes the mesh must use every process's devices.
  devices = _mesh((4, 2), 2).devices.reshape(-1).tolist()
  with pytest.raises(errors.UserError, match="of 2 processes"):
    partitioning.make_mesh(mesh_shape=(2, 2), devices=devices)


def test_process_slice_splits_evenly_in_order():
  slices = [distributed.process_slice(10, p, 3) for p in range(3)]
  assert slices == [slice(0, 4), slice(4, 7), slice(7, 10)]
  assert distributed.process_slice(5, 0, 1) == slice(0, 5)
  assert distributed.process_slice(1, 1, 2) == slice(1, 1)  # Empty.


def test_allgather_objects_with_one_process():
  assert distributed.allgather_objects({"a": [1, "b"]}) == [{"a": [1, "b"]}]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_unreachable_coordinator_times_out_with_the_fix():
  port = _free_port()  # Nobody listens there.
  with pytest.raises(errors.UserError, match=(
      rf"cannot reach the coordinator at 127.0.0.1:{port}.*Fix: start "
      "process 0")):
    distributed.initialize(f"127.0.0.1:{port}", 2, 1, timeout_s=1)


def test_bad_arguments_name_the_flag():
  with pytest.raises(errors.UserError, match="process index 2 is not in 0..1"):
    distributed.initialize("127.0.0.1:1", 2, 2)
  with pytest.raises(errors.UserError, match="is not host:port"):
    distributed.initialize("localhost", 2, 1)
  with socket.socket() as taken:
    taken.bind(("", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with pytest.raises(errors.UserError, match=f"port {port} is in use"):
      distributed.initialize(f"127.0.0.1:{port}", 2, 0)


def test_coordinator_alone_gives_up_with_a_message_and_exit_code_2():
  # Process 0 of 2 starts the coordinator; process 1 never comes. JAX's wait
  # cannot be interrupted, so the process prints the error and exits.
  code = ("from train import distributed; distributed.initialize("
          f"'127.0.0.1:{_free_port()}', 2, 0, timeout_s=2)")
  proc = subprocess.run(
      [sys.executable, "-c", code], capture_output=True, text=True,
      timeout=300, cwd=ROOT, check=False,
      env={"PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin",
           "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 2, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: jax.distributed.initialize: process 0 "
                         "(the coordinator) waited 2 s for all 2 processes")
  assert "Fix: start every process" in last
