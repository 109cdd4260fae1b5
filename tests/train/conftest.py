"""Fixtures for the trainer tests: a toy seqio task and a tiny fake model.

The toy task (`trainer_test_toy_v001`) has train/validation/test splits of
short strings over seqio's checked-in 26-piece test vocabulary, plus the
ReDial-style metadata features `conversation_id` and `target_movies`.

`FakeModel` follows the `models.EncoderDecoderModel` contract
(`get_initial_variables`, `loss_fn`, `predict_batch`, `module.config`) with a
two-matrix network that compiles in well under a second, so the trainer's
orchestration (resume, NaN, sharding, microbatches) is tested quickly; the
real T5 is exercised by main_test and configs_test.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import optax
import pytest
import seqio
import seqio.test_utils
import tensorflow as tf

TOY_TASK = "trainer_test_toy_v001"
TOY_MIXTURE = "trainer_test_toy_mix_v001"
WORDS = ("this", "is", "a", "test", "cat", "map", "we", "lie", "vat", "hot")
SPLIT_SIZES = {"train": 48, "validation": 12, "test": 6}


def tiny_t5_config(**overrides):
  """The tests' tiny T5 1.1 config (2+2 layers, float32, no dropout).

  Args:
    **overrides: T5Config fields to change, e.g. `dtype=jnp.bfloat16`.

  Returns:
    A `network.T5Config`.
  """
  from train import network  # pylint: disable=g-import-not-at-top

  fields = dict(
      vocab_size=32, emb_dim=16, num_heads=2, num_encoder_layers=2,
      num_decoder_layers=2, head_dim=8, mlp_dim=32,
      mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=False, dtype=jnp.float32)
  fields.update(overrides)
  return network.T5Config(**fields)


@pytest.fixture(name="tiny_t5_config", scope="session")
def _tiny_t5_config():
  """`tiny_t5_config(**overrides) -> network.T5Config`."""
  return tiny_t5_config


def _toy_dataset(split, shuffle_files=False, seed=None):
  del shuffle_files, seed
  n = SPLIT_SIZES[split]
  offset = {"train": 0, "validation": 1000, "test": 2000}[split]
  inputs, targets, ids, movies = [], [], [], []
  for i in range(n):
    k = i + offset
    words = [WORDS[(k * 7 + j * 3) % len(WORDS)] for j in range(2 + k % 5)]
    inputs.append(" ".join(words))
    targets.append(" ".join(reversed(words[:3])))
    ids.append(f"{split}-{i}")
    movies.append(["Heat (1995)", "Up (2009)"][: 1 + i % 2])
  return tf.data.Dataset.from_tensor_slices({
      "inputs": inputs,
      "targets": targets,
      "conversation_id": ids,
      "target_movies": tf.ragged.constant(movies),
  })


def register_toy_tasks():
  """Registers the toy task and a two-task mixture (idempotent)."""
  vocab = seqio.test_utils.sentencepiece_vocab()
  features = {
      "inputs": seqio.Feature(vocab, add_eos=True),
      "targets": seqio.Feature(vocab, add_eos=True),
  }
  for name in (TOY_TASK, TOY_TASK + "_b"):
    if name in seqio.TaskRegistry.names():
      continue
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(
            _toy_dataset, splits=tuple(SPLIT_SIZES)),
        preprocessors=[
            seqio.preprocessors.tokenize,
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=features,
    )
  if TOY_MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(
        TOY_MIXTURE, [(TOY_TASK, 1.0), (TOY_TASK + "_b", 1.0)])
  return vocab


@pytest.fixture(scope="session")
def toy_task():
  register_toy_tasks()
  return TOY_TASK


@dataclasses.dataclass(frozen=True)
class FakeConfig:
  vocab_size: int = 26
  emb_dim: int = 8
  dropout_rate: float = 0.0


class FakeNetwork(nn.Module):
  """logits[b, t] = W(emb(decoder_input[b, t]) + mean_s emb(encoder[b, s]))."""

  config: FakeConfig

  @nn.compact
  def __call__(self, encoder_input_tokens, decoder_input_tokens,
               enable_dropout=True):
    cfg = self.config
    embed = nn.Embed(
        cfg.vocab_size, cfg.emb_dim,
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(1.0), ("vocab", "embed")))
    context = jnp.mean(embed(encoder_input_tokens), axis=1, keepdims=True)
    x = embed(decoder_input_tokens) + context  # [batch, length, emb]
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=not enable_dropout)
    return nn.Dense(
        cfg.vocab_size,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), ("embed", "vocab")))(x)


class FakeModel:
  """The EncoderDecoderModel contract around FakeNetwork (summed loss)."""

  def __init__(self, config=FakeConfig(), vocabulary=None):
    self.module = FakeNetwork(config)
    vocabulary = vocabulary or seqio.test_utils.sentencepiece_vocab()
    self.input_vocabulary = self.output_vocabulary = vocabulary

  def get_initial_variables(self, rng, input_shapes, input_types=None):
    del input_types
    return self.module.init(
        rng,
        jnp.ones(input_shapes["encoder_input_tokens"], jnp.int32),
        jnp.ones(input_shapes["decoder_input_tokens"], jnp.int32),
        enable_dropout=False,
    )

  def loss_fn(self, params, batch, dropout_rng):
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    logits = self.module.apply(
        {"params": params}, batch["encoder_input_tokens"],
        batch["decoder_input_tokens"], enable_dropout=rngs is not None,
        rngs=rngs)
    weights = batch["decoder_loss_weights"]
    token_loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["decoder_target_tokens"])
    correct = jnp.argmax(logits, -1) == batch["decoder_target_tokens"]
    loss = jnp.sum(token_loss * weights)
    denom = jnp.maximum(jnp.sum(weights), 1.0)
    return loss, {"accuracy": jnp.sum(correct * weights) / denom}

  def predict_batch(self, params, batch, *, decode_method="greedy",
                    num_beams=4, temperature=1.0, max_decode_length=None,
                    rng=None):
    del decode_method, num_beams, temperature, rng
    length = max_decode_length or batch["decoder_input_tokens"].shape[1]
    tokens = jnp.zeros((batch["encoder_input_tokens"].shape[0], length),
                       jnp.int32)
    logits = self.module.apply(
        {"params": params}, batch["encoder_input_tokens"], tokens,
        enable_dropout=False)
    return jnp.argmax(logits, -1).astype(jnp.int32)


@pytest.fixture
def fake_model():
  return FakeModel()


@pytest.fixture
def make_fake_model():
  """Builds FakeModels with other FakeConfig fields (e.g. dropout_rate)."""
  return lambda **kw: FakeModel(FakeConfig(**kw))
