"""Logical axis rules and the ('data', 'model') device mesh.

Layers name their axes logically (`train/layers.py`); this table alone
decides how they map onto the mesh, as t5x's `standard_logical_axis_rules`
does for 1-D model parallelism: the batch is split over 'data'; the vocab,
MLP and attention-head dimensions over 'model'; everything else replicated.
On several hosts, call `jax.distributed.initialize()` first: the mesh then
spans all processes' devices and GSPMD does the rest.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

PyTree = Any

LOGICAL_AXIS_RULES: tuple[tuple[str, Optional[str]], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("kv", None),
    ("embed", None),
    ("length", None),
    ("relpos_buckets", None),
)

MESH_AXES = ("data", "model")


def make_mesh(num_partitions: int = 1,
              mesh_shape: Optional[Sequence[int]] = None,
              devices: Optional[Sequence[Any]] = None) -> jax.sharding.Mesh:
  """A ('data', 'model') mesh over the first `data * model` devices.

  Args:
    num_partitions: size of the 'model' axis when `mesh_shape` is None; the
      'data' axis takes the remaining devices.
    mesh_shape: explicit `(data, model)`.
    devices: defaults to `jax.devices()` (all processes).

  Returns:
    The mesh.

  Raises:
    ValueError: the shape does not fit the devices.
  """
  devices = list(devices if devices is not None else jax.devices())
  if mesh_shape is None:
    if num_partitions < 1 or len(devices) % num_partitions:
      raise ValueError(
          f"num_partitions={num_partitions} does not divide the "
          f"{len(devices)} devices")
    mesh_shape = (len(devices) // num_partitions, num_partitions)
  mesh_shape = tuple(int(d) for d in mesh_shape)
  if len(mesh_shape) != 2 or min(mesh_shape) < 1:
    raise ValueError(f"mesh_shape must be (data, model), got {mesh_shape}")
  needed = int(np.prod(mesh_shape))
  if needed > len(devices):
    raise ValueError(
        f"mesh_shape {mesh_shape} needs {needed} devices, "
        f"only {len(devices)} available ({devices[0].platform})")
  if needed == len(devices) and devices[0].platform == "tpu":
    # Topology-aware order on TPU slices.
    from jax.experimental import mesh_utils  # pylint: disable=g-import-not-at-top
    grid = mesh_utils.create_device_mesh(mesh_shape, devices)
  else:
    grid = np.asarray(devices[:needed], dtype=object).reshape(mesh_shape)
  return jax.sharding.Mesh(grid, MESH_AXES)


def logical_to_mesh_spec(
    spec: jax.sharding.PartitionSpec,
    rules: Sequence[tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES,
) -> jax.sharding.PartitionSpec:
  """('embed', 'mlp') -> PartitionSpec(None, 'model') under `rules`."""
  return nn.logical_to_mesh_axes(tuple(spec), rules)


def logical_to_sharding(
    specs: PyTree,
    mesh: jax.sharding.Mesh,
    rules: Sequence[tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES,
) -> PyTree:
  """A tree of logical PartitionSpecs -> a tree of NamedShardings.

  Pair with `fit_to_shape` where a dimension may not be divisible by its
  mesh axis (e.g. a 26-piece test vocabulary on a 2-way 'model' axis).
  """
  is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)
  return jax.tree.map(
      lambda s: jax.sharding.NamedSharding(mesh, logical_to_mesh_spec(s, rules)),
      specs, is_leaf=is_spec)


def fit_to_shape(sharding: jax.sharding.NamedSharding,
                 shape: Sequence[int]) -> jax.sharding.NamedSharding:
  """Drops mesh axes that do not divide their dimension of `shape`."""
  spec = list(sharding.spec) + [None] * (len(shape) - len(sharding.spec))
  for i, axis in enumerate(spec):
    if axis is not None and shape[i] % sharding.mesh.shape[axis]:
      spec[i] = None
  return jax.sharding.NamedSharding(sharding.mesh,
                                    jax.sharding.PartitionSpec(*spec))
