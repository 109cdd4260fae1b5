"""Logical axis rules and the mesh helpers."""

import jax
import pytest

from crs_runtime import errors
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
  # A user's mistake, with the fix (tests/train/distributed_test.py has the
  # multi-process cases).
  with pytest.raises(errors.UserError, match="needs"):
    partitioning.make_mesh(mesh_shape=(n + 1, 1))
  with pytest.raises(errors.UserError, match="does not divide"):
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


def test_activation_hints_become_constraints_under_the_rules():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import seqio.test_utils  # pylint: disable=g-import-not-at-top
  from train import models, network  # pylint: disable=g-import-not-at-top,g-multiple-import

  vocab = seqio.test_utils.sentencepiece_vocab()
  model = models.EncoderDecoderModel(network.Transformer(network.T5Config(
      vocab_size=32, emb_dim=16, num_heads=2, num_encoder_layers=1,
      num_decoder_layers=1, head_dim=4, mlp_dim=32, dropout_rate=0.0)),
                                     vocab, vocab)
  batch = {k: np.ones((2, 4), np.int32) for k in (
      "encoder_input_tokens", "decoder_input_tokens",
      "decoder_target_tokens")}
  batch["decoder_loss_weights"] = np.ones((2, 4), np.float32)
  params = nn.meta.unbox(model.get_initial_variables(
      jax.random.PRNGKey(0), {"encoder_input_tokens": (2, 4),
                              "decoder_input_tokens": (2, 4)})["params"])
  def lowered():  # a fresh jit: the rules are not part of jit's cache key
    loss = jax.jit(lambda p, b: model.loss_fn(p, b, None)[0])
    return loss.lower(params, batch).as_text()

  assert "sharding_constraint" not in lowered()
  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(
      partitioning.LOGICAL_AXIS_RULES):
    text = lowered()
  # One per constrained activation (q/k/v/out, MLP, residuals, logits).
  assert text.count("sharding_constraint") >= 10
