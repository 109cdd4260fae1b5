"""Logical axis rules and the mesh helpers."""

import jax
import pytest

from train import partitioning

P = jax.sharding.PartitionSpec


def test_rules_map_t5_axes_to_the_mesh():
  to_mesh = partitioning.logical_to_mesh_spec
  assert to_mesh(P("embed", "mlp")) == P(None, "model")
  assert to_mesh(P("vocab", "embed")) == P("model", None)
  assert to_mesh(P("embed", "heads", "kv")) == P(None, "model", None)
  assert to_mesh(P("batch", "length", "embed")) == P("data", None, None)


def test_make_mesh_shapes_and_errors():
  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  assert mesh.axis_names == ("data", "model")
  assert mesh.devices.shape == (1, 1)
  n = len(jax.devices())
  assert partitioning.make_mesh().devices.shape == (n, 1)
  with pytest.raises(ValueError, match="needs"):
    partitioning.make_mesh(mesh_shape=(n + 1, 1))
  with pytest.raises(ValueError, match="does not divide"):
    partitioning.make_mesh(num_partitions=n + 1)


def test_tree_of_specs_to_shardings_and_fit_to_shape():
  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  tree = {"a": P("embed", "mlp"), "b": {"c": P("vocab", "embed")}}
  shardings = partitioning.logical_to_sharding(tree, mesh)
  assert shardings["a"].spec == P(None, "model")
  assert shardings["b"]["c"].spec == P("model", None)
  # A 1-way axis divides anything; the spec is kept.
  assert partitioning.fit_to_shape(shardings["a"], (4, 7)).spec == P(
      None, "model")
