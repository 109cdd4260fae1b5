"""Logical axis rules and the ('data', 'model') device mesh.

Layers name their axes logically (`train/layers.py`); this table alone
decides how they map onto the mesh, as t5x's `standard_logical_axis_rules`
does for 1-D model parallelism: the batch is split over 'data'; the vocab,
MLP and attention-head dimensions over 'model'; everything else replicated.
On several hosts, call `jax.distributed.initialize()` first: the mesh then
spans all processes' devices and GSPMD does the rest.

The trainer asks this module for every sharding it uses: `param_shardings`
(from the layers' annotations), `opt_state_shardings` (optimizer leaves follow
the param they mirror), `batch_sharding` (leading axis over 'data') and
`under_rules` (trace a jitted step with the rules active, so activation hints
become sharding constraints). To shard a new axis, add a row to
`LOGICAL_AXIS_RULES`.
"""

from typing import Any, Callable, Optional, Sequence

import flax
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


def _user_error(what: str, **kwargs: Any) -> Exception:
  """A `crs_runtime.errors.UserError`, imported when one is raised.

  (Importing `crs_tasks` registers every Task, which `train/` does not need.)
  """
  from crs_runtime import errors  # pylint: disable=g-import-not-at-top
  return errors.UserError(what, **kwargs)


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
    errors.UserError: the shape does not fit the devices (with several
      processes, the mesh must use every process's devices).
  """
  devices = list(devices if devices is not None else jax.devices())
  processes = len({d.process_index for d in devices})
  where = f"{len(devices)} {devices[0].platform} devices" + (
      f" of {processes} processes" if processes > 1 else "")
  if mesh_shape is None:
    if num_partitions < 1 or len(devices) % num_partitions:
      raise _user_error(
          f"NUM_PARTITIONS={num_partitions} does not divide the {where}",
          where="NUM_PARTITIONS",
          fix=f"use a divisor of {len(devices)}")
    mesh_shape = (len(devices) // num_partitions, num_partitions)
  mesh_shape = tuple(int(d) for d in mesh_shape)
  if len(mesh_shape) != 2 or min(mesh_shape) < 1:
    raise _user_error(
        f"mesh_shape must be (data, model), got {mesh_shape}",
        where="MESH_SHAPE", fix="two positive sizes, e.g. (4, 2)")
  needed = int(np.prod(mesh_shape))
  if needed > len(devices) or (processes > 1 and needed != len(devices)):
    raise _user_error(
        f"mesh_shape {mesh_shape} needs {needed} devices, the run has the "
        f"{where}", where="MESH_SHAPE",
        fix=f"make data x model = {len(devices)} (or use NUM_PARTITIONS), "
        "or start the run on more devices")
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


# ---------------------------------------------------------------------------
# Shardings of the train state and the batches.
# ---------------------------------------------------------------------------


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """The same full copy on every device of `mesh`."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def batch_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Splits a batch's leading axis over the mesh's 'data' axis."""
  return jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data")
  )


def logical_param_specs(variables: PyTree) -> PyTree:
  """Logical PartitionSpecs of `variables['params']` from flax annotations.

  Supports both annotation styles: `nn.with_logical_partitioning` boxes and
  t5x's `param_with_axes` (a `params_axes` collection).
  """
  if "params_axes" in variables:
    axes = flax.core.unfreeze(variables["params_axes"])
    return nn.partitioning.get_axis_names(axes)
  return nn.get_partition_spec(variables["params"])


def param_shardings(
    abstract_variables: PyTree,
    mesh: jax.sharding.Mesh,
    rules: Sequence[tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES,
) -> PyTree:
  """NamedShardings of the params, from `jax.eval_shape` of the model init.

  Args:
    abstract_variables: the initial variables as ShapeDtypeStructs (boxed).
    mesh: the ('data', 'model') mesh.
    rules: logical axis rules.

  Returns:
    A tree shaped like the unboxed params; a dimension its mesh axis does
    not divide is replicated (`fit_to_shape`).
  """
  specs = logical_param_specs(abstract_variables)
  shapes = jax.tree.map(
      lambda x: x.shape, nn.meta.unbox(abstract_variables["params"]))
  return jax.tree.map(
      fit_to_shape,
      logical_to_sharding(specs, mesh, rules),
      shapes,
      is_leaf=lambda x: isinstance(x, jax.sharding.NamedSharding))


def _path_keys(path) -> tuple[Any, ...]:
  keys = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        keys.append(getattr(entry, attr))
        break
  return tuple(keys)


def opt_state_shardings(
    abstract_opt_state: PyTree,
    params: PyTree,
    param_shardings: PyTree,  # pylint: disable=redefined-outer-name
    mesh: jax.sharding.Mesh,
) -> PyTree:
  """Shards optimizer-state leaves like the param they mirror.

  A leaf whose path ends with a param's path and has that param's shape
  (Adam's `mu`/`nu`, Adafactor's unfactored `v`) gets the param's sharding;
  everything else (step counts, factored row/column statistics) is
  replicated.

  Args:
    abstract_opt_state: `jax.eval_shape(optimizer.init, params)`.
    params: the params (arrays or ShapeDtypeStructs).
    param_shardings: their shardings.
    mesh: the mesh.

  Returns:
    A tree of NamedShardings shaped like the optimizer state.
  """
  by_path = {}
  flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
  for (path, leaf), sharding in zip(flat_params,
                                    jax.tree.leaves(param_shardings)):
    by_path[_path_keys(path)] = (tuple(leaf.shape), sharding)
  lengths = sorted({len(k) for k in by_path}, reverse=True)
  fallback = replicated(mesh)

  def pick(path, leaf):
    keys = _path_keys(path)
    for n in lengths:
      match = by_path.get(keys[-n:]) if n <= len(keys) else None
      if match and match[0] == tuple(leaf.shape):
        return match[1]
    return fallback

  return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def under_rules(
    fn: Callable[..., Any],
    mesh: jax.sharding.Mesh,
    rules: Sequence[tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES,
) -> Callable[..., Any]:
  """Calls (and so traces) the jitted `fn` under the mesh and the rules."""

  def wrapped(*args):
    with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(rules):
      return fn(*args)

  return wrapped
