"""Tests for train/trainer.py: steps, exact resume, NaN stop, summaries.

Most tests use conftest's FakeModel (same contract as EncoderDecoderModel,
compiles in about a second); the multi-device test uses the real tiny T5.
"""

import errno
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import seqio.test_utils
import tensorflow as tf

from crs_runtime import errors
from train import checkpointing
from train import finite_checks
from train import hf_import
from train import input_pipeline
from train import models
from train import network
from train import partitioning
from train import steps
from train import summaries
from train import trainer
from train import training_eval

LENGTHS = {"inputs": 9, "targets": 6}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _data_cfg(task, split="train", batch_size=4):
  return input_pipeline.DatasetConfig(
      mixture_or_task_name=task, task_feature_lengths=LENGTHS, split=split,
      batch_size=batch_size, shuffle=split == "train", seed=7)


def _train(model, task, model_dir, total_steps, **kw):
  args = dict(
      model=model,
      optimizer=optax.adafactor(0.01),
      train_dataset_cfg=_data_cfg(task),
      train_eval_dataset_cfg=_data_cfg(task, "validation"),
      model_dir=str(model_dir),
      total_steps=total_steps,
      eval_period=100,
      checkpoint_period=2,
      keep_checkpoints=3,
      log_period=1,
      learning_rate_fn=optax.constant_schedule(0.01),
      random_seed=5,
  )
  args.update(kw)
  return trainer.train(**args)


def _batch(batch_size=8, seed=0):
  rng = np.random.RandomState(seed)
  targets = rng.randint(3, 26, size=(batch_size, 6)).astype(np.int32)
  weights = (rng.rand(batch_size, 6) > 0.3).astype(np.float32)
  return {
      "encoder_input_tokens": rng.randint(
          1, 26, size=(batch_size, 9)).astype(np.int32),
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": targets,
      "decoder_loss_weights": weights,
  }


def _init_params(model):
  variables = model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (2, 9), "decoder_input_tokens": (2, 6)})
  return nn.meta.unbox(variables["params"])


# ------------------------------- Steps --------------------------------------


def test_accumulated_gradient_equals_full_batch_gradient(fake_model):
  params = _init_params(fake_model)
  batch = _batch()
  rng = jax.random.PRNGKey(1)
  loss, grads, metrics = steps.accumulate_grads(
      fake_model.loss_fn, params, batch, rng, num_microbatches=1)
  loss4, grads4, _ = steps.accumulate_grads(
      fake_model.loss_fn, params, batch, rng, num_microbatches=4)
  np.testing.assert_allclose(loss4, loss, rtol=1e-6)
  for g, g4 in zip(jax.tree.leaves(grads), jax.tree.leaves(grads4)):
    np.testing.assert_allclose(g4, g, rtol=1e-5, atol=1e-6)
  # The reference: jax.grad of the loss on the whole batch.
  ref = jax.grad(lambda p: fake_model.loss_fn(p, batch, rng)[0])(params)
  for g, r in zip(jax.tree.leaves(grads4), jax.tree.leaves(ref)):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
  assert "accuracy" in metrics


def test_microbatches_must_divide_batch(fake_model):
  with pytest.raises(ValueError, match="not divisible by num_microbatches 3"):
    steps.accumulate_grads(fake_model.loss_fn, _init_params(fake_model),
                             _batch(8), jax.random.PRNGKey(0), 3)


def test_rng_determinism():
  """Step s draws from fold_in(base, s), whatever happened before."""
  base = jax.random.PRNGKey(42)

  def loss_fn(params, batch, dropout_rng):
    del batch
    draw = jax.random.uniform(dropout_rng)
    return jnp.sum(params["w"]) * 0.0, {"draw": draw}

  step = jax.jit(steps.make_train_step(loss_fn, optax.sgd(0.1)))
  params = {"w": jnp.ones(3)}
  batch = _batch(2)
  draws = {}
  state = steps.TrainState(step=jnp.asarray(0), params=params,
                             opt_state=optax.sgd(0.1).init(params))
  for _ in range(4):
    k = int(state.step)
    state, metrics = step(state, batch, base)
    draws[k] = float(metrics["draw"])
  # A "resumed" state at step 2 (fresh params) draws the same as before.
  resumed = steps.TrainState(step=jnp.asarray(2), params=params,
                               opt_state=optax.sgd(0.1).init(params))
  _, metrics = step(resumed, batch, base)
  assert float(metrics["draw"]) == draws[2]
  assert draws[2] == float(jax.random.uniform(jax.random.fold_in(base, 2)))
  assert len(set(draws.values())) == 4


def test_train_step_reports_learning_rate_and_counts(fake_model):
  params = _init_params(fake_model)
  opt = optax.adamw(optax.linear_schedule(0.0, 1.0, 10))
  step = jax.jit(steps.make_train_step(
      fake_model.loss_fn, opt,
      learning_rate_fn=optax.linear_schedule(0.0, 1.0, 10)))
  state = steps.TrainState(step=jnp.asarray(3), params=params,
                             opt_state=opt.init(params))
  batch = _batch(4)
  new_state, metrics = step(state, batch, jax.random.PRNGKey(0))
  assert int(new_state.step) == 4
  np.testing.assert_allclose(metrics["learning_rate"], 0.3, rtol=1e-6)
  assert float(metrics["num_target_tokens"]) == float(
      (batch["decoder_loss_weights"] > 0).sum())
  assert float(metrics["num_examples"]) == 4.0


def test_training_eval_weights_means_by_tokens_and_pads_last_batch():
  # Two batches of a batch-size-2 eval: 3 + 1 target tokens.
  weights = [np.array([[1, 1], [1, 0]], np.float32),
             np.array([[1, 0]], np.float32)]
  ds = tf.data.Dataset.from_generator(
      lambda: ({"decoder_loss_weights": w,
                "encoder_input_tokens": np.ones_like(w, np.int32)}
               for w in weights),
      output_signature={
          "decoder_loss_weights": tf.TensorSpec([None, 2], tf.float32),
          "encoder_input_tokens": tf.TensorSpec([None, 2], tf.int32)})
  seen_rows = []

  def eval_step(params, batch):
    del params
    seen_rows.append(batch["decoder_loss_weights"].shape[0])
    tokens = float(batch["decoder_loss_weights"].sum())
    # Summed loss 2.0 per token; per-batch accuracy 0.5 then 1.0.
    return {"loss": jnp.asarray(2.0 * tokens),
            "accuracy": jnp.asarray(0.5 if tokens == 3 else 1.0),
            "num_target_tokens": jnp.asarray(tokens)}

  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  out = training_eval.run_training_eval(
      eval_step, None, {"t": ds}, batch_size=2,
      data_sharding=partitioning.batch_sharding(mesh))
  assert seen_rows == [2, 2]  # The 1-row batch was padded to 2.
  assert out["training_eval/t/num_target_tokens"] == 4.0
  assert out["training_eval/t/loss_per_target_token"] == 2.0
  # Token-weighted: (0.5 * 3 + 1.0 * 1) / 4.
  assert out["training_eval/t/accuracy"] == 0.625


def test_microbatch_metrics_sum_counts_and_average_means():
  batch = _batch(4)

  def loss_fn(params, microbatch, rng):
    del rng
    rows = microbatch["decoder_loss_weights"].shape[0]
    return jnp.sum(params["w"]) * rows, {
        "accuracy": jnp.asarray(0.25), "num_rows": jnp.asarray(rows * 1.0)}

  loss, _, metrics = steps.accumulate_grads(
      loss_fn, {"w": jnp.ones(2)}, batch, jax.random.PRNGKey(0), 2)
  assert float(loss) == 8.0  # 2 microbatches x (2 x 2 rows).
  assert float(metrics["num_rows"]) == 4.0
  assert float(metrics["accuracy"]) == 0.25


def test_opt_state_shardings_follow_their_params():
  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  named = lambda *spec: jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec(*spec))
  params = {"dense": {"kernel": jnp.ones((4, 6)), "bias": jnp.ones((6,))}}
  shardings = {"dense": {"kernel": named(None, "model"),
                         "bias": named("model")}}
  for opt in (optax.adamw(0.1), optax.adafactor(0.1)):
    abstract = jax.eval_shape(opt.init, params)
    got = partitioning.opt_state_shardings(abstract, params, shardings, mesh)
    flat = jax.tree_util.tree_flatten_with_path(got)[0]
    shapes = [l.shape for l in jax.tree.leaves(abstract)]
    for (path, sharding), shape in zip(flat, shapes):
      keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
      if keys[-2:] == ["dense", "kernel"] and shape == (4, 6):
        assert sharding.spec == jax.sharding.PartitionSpec(None, "model")
      elif keys[-2:] == ["dense", "bias"] and shape == (6,):
        assert sharding.spec == jax.sharding.PartitionSpec("model")
      else:  # Counts and Adafactor's factored row/column statistics.
        assert sharding.spec == jax.sharding.PartitionSpec(), (keys, shape)
  adam = jax.eval_shape(optax.adamw(0.1).init, params)
  specs = [s.spec for s in jax.tree.leaves(
      partitioning.opt_state_shardings(adam, params, shardings, mesh))]
  assert specs.count(jax.sharding.PartitionSpec(None, "model")) == 2


# ------------------------------ The loop ------------------------------------


def test_train_writes_checkpoints_summaries_and_progress(
    fake_model, toy_task, tmp_path, capsys):
  result = _train(fake_model, toy_task, tmp_path, 5, keep_checkpoints=2,
                  eval_period=5, gin_config_str="# operative\nX = 1\n")
  assert result.step == 5 and sorted(result.losses) == [1, 2, 3, 4, 5]
  assert all(np.isfinite(v) for v in result.losses.values())
  manager = checkpointing.CheckpointManager(str(tmp_path), keep=2)
  assert manager.all_steps() == [4, 5]  # Every 2 steps and the last; keep 2.
  with open(tmp_path / "model_config.json") as f:
    assert json.load(f)["emb_dim"] == 8
  assert (tmp_path / "config.gin").read_text() == "# operative\nX = 1\n"
  train_scalars = summaries.read_scalars(str(tmp_path / "train"))
  for tag in ("loss", "learning_rate", "timing/seqs_per_second",
              "timing/tokens_per_second", "accuracy"):
    assert sorted(train_scalars[tag]) == [1, 2, 3, 4, 5], tag
  np.testing.assert_allclose(train_scalars["learning_rate"][3], 0.01)
  assert np.isclose(train_scalars["loss_per_target_token"][5],
                    result.losses[5])
  eval_scalars = summaries.read_scalars(
      str(tmp_path / "training_eval" / toy_task))
  assert set(eval_scalars) >= {"loss_per_target_token", "accuracy",
                               "num_target_tokens"}
  assert result.eval_metrics[5][
      f"training_eval/{toy_task}/loss_per_target_token"] > 0
  out = capsys.readouterr().out
  assert "step 5/5 loss" in out and "tokens/s" in out and "ETA 0:00:00" in out


def test_training_reduces_loss(fake_model, toy_task, tmp_path):
  result = _train(fake_model, toy_task, tmp_path, 30,
                  optimizer=optax.adam(0.05), checkpoint_period=30)
  losses = [result.losses[s] for s in sorted(result.losses)]
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_crash_and_restart_gives_identical_losses(
    make_fake_model, toy_task, tmp_path, capsys):
  model = make_fake_model(dropout_rate=0.3)
  full = _train(model, toy_task, tmp_path / "full", 7)

  # Crash (Ctrl-C) while fetching the 6th batch (after the step-4
  # checkpoint).
  real_next = input_pipeline.BatchIterator.__next__

  def crashing_next(self):
    if self.position == 5:
      raise KeyboardInterrupt("simulated kill")
    return real_next(self)

  with mock.patch.object(input_pipeline.BatchIterator, "__next__",
                         crashing_next):
    with pytest.raises(trainer.TrainingInterrupted) as e:
      _train(model, toy_task, tmp_path / "crash", 7)
  ckpt = tmp_path / "crash" / "checkpoints" / "4"
  assert str(e.value) == (
      f"training interrupted at step 5; the last checkpoint is step 4 "
      f"({ckpt})")
  assert not (tmp_path / "crash" / "train.lock").exists()  # Released.
  capsys.readouterr()
  restarted = _train(model, toy_task, tmp_path / "crash", 7)
  assert f"Resuming from checkpoint step 4 ({ckpt})." in (
      capsys.readouterr().out)
  assert restarted.start_step == 4
  assert sorted(restarted.losses) == [5, 6, 7]
  for step in (5, 6, 7):
    assert restarted.losses[step] == full.losses[step], step
  jax.tree.map(np.testing.assert_array_equal, restarted.params,
               full.params)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    fake_model, toy_task, tmp_path):
  real_make = steps.make_train_step

  def make_nan_at_step_3(*args, **kwargs):
    step_fn = real_make(*args, **kwargs)

    def wrapped(state, batch, rng):
      new_state, metrics = step_fn(state, batch, rng)
      metrics["loss"] = jnp.where(state.step == 2, jnp.nan, metrics["loss"])
      return new_state, metrics

    return wrapped

  with mock.patch.object(steps, "make_train_step", make_nan_at_step_3):
    with pytest.raises(finite_checks.NonFiniteLossError,
                       match=r"nan at step 3.*last good checkpoint is step 2"):
      _train(fake_model, toy_task, tmp_path, 6)
  assert checkpointing.CheckpointManager(str(tmp_path)).all_steps() == [2]


def test_huge_learning_rate_stops_with_clear_error(
    fake_model, toy_task, tmp_path):
  with pytest.raises(finite_checks.NonFiniteLossError, match="training loss is"):
    _train(fake_model, toy_task, tmp_path, 10, optimizer=optax.sgd(1e30),
           checkpoint_period=100)


def test_initial_checkpoint_from_our_model_dir(fake_model, toy_task,
                                               tmp_path):
  first = _train(fake_model, toy_task, tmp_path / "a", 2)
  # A fresh 0-step run initialized from it starts from the same params.
  second = _train(fake_model, toy_task, tmp_path / "b", 0,
                  initial_checkpoint_path=str(tmp_path / "a"))
  assert second.start_step == 0
  jax.tree.map(np.testing.assert_array_equal, second.params, first.params)


def _snapshot(directory):
  """`{relative path: bytes}` of every file under `directory`."""
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in pathlib.Path(directory).rglob("*") if p.is_file()}


def test_resume_with_another_optimizer_says_what_differs(
    fake_model, toy_task, tmp_path):
  _train(fake_model, toy_task, tmp_path, 2, gin_config_str=(
      "trainer.train.optimizer = @optax.adafactor()\n"))
  before = _snapshot(tmp_path)
  with pytest.raises(checkpointing.OptimizerMismatchError) as e:
    _train(fake_model, toy_task, tmp_path, 4, optimizer=optax.adam(0.01),
           gin_config_str="trainer.train.optimizer = @optax.adam()\n")
  assert str(e.value) == (
      f"{tmp_path}: optimizer state structure differs from the checkpoint: "
      "the command asks for @optax.adam() (state fields count, mu, nu), the "
      "directory holds @optax.adafactor() (state fields count, v, v_col, "
      "v_row) (checkpoint step 2; nothing was written). Fix: resume "
      "with the original optimizer settings (in its config.gin), or give a "
      "new --gin.MODEL_DIR with "
      f"--gin.INITIAL_CHECKPOINT_PATH=\"'{tmp_path}'\" to start the new "
      "optimizer from these weights")
  assert isinstance(e.value, errors.UserError)  # One line, exit 2.
  assert _snapshot(tmp_path) == before  # Nothing written, no lock left.
  # The weights do start a new run with the new optimizer, as advised.
  new = _train(fake_model, toy_task, tmp_path / "new", 1,
               optimizer=optax.adam(0.01),
               initial_checkpoint_path=str(tmp_path))
  assert new.start_step == 0


def test_resume_with_other_optimizer_shapes_names_the_first_difference(
    fake_model, toy_task, tmp_path):
  _train(fake_model, toy_task, tmp_path, 2)  # Nothing factored (dims < 128).
  with pytest.raises(checkpointing.OptimizerMismatchError) as e:
    _train(fake_model, toy_task, tmp_path, 4,
           optimizer=optax.adafactor(0.01, min_dim_size_to_factor=4))
  assert str(e.value).startswith(
      f"{tmp_path}: optimizer state structure differs from the checkpoint: "
      "the command asks for state fields count, v, v_col, v_row, "
      "0/v/Dense_0/kernel of shape (1,), the directory holds state fields "
      "count, v, v_col, v_row, 0/v/Dense_0/kernel of shape (8, 26) "
      "(checkpoint step 2; nothing was written). Fix: ")


def test_resume_with_another_learning_rate_resumes(fake_model, toy_task,
                                                   tmp_path):
  _train(fake_model, toy_task, tmp_path, 2)
  resumed = _train(fake_model, toy_task, tmp_path, 4,
                   optimizer=optax.adafactor(0.5),
                   learning_rate_fn=optax.constant_schedule(0.5))
  assert resumed.start_step == 2 and sorted(resumed.losses) == [3, 4]


def _tiny_t5(config):
  vocab = seqio.test_utils.sentencepiece_vocab()
  return models.EncoderDecoderModel(network.Transformer(config), vocab, vocab)


def test_initial_checkpoint_from_hugging_face(toy_task, tmp_path,
                                             tiny_t5_config):
  # Written by transformers (scripts/make_hf_goldens.py): 1+1 gated-ReLU
  # layers, 16 wide, vocabulary 40.
  hf_dir = str(pathlib.Path(__file__).parents[1] / "testdata" / "hf_parity"
               / "t5_1_1_buckets")
  sizes = dict(vocab_size=40, num_encoder_layers=1, num_decoder_layers=1,
               mlp_dim=24, mlp_activations=("relu", "linear"))
  result = _train(_tiny_t5(tiny_t5_config(**sizes)), toy_task,
                  tmp_path / "run", 0, initial_checkpoint_path=hf_dir)
  _, expected = hf_import.load_pretrained(hf_dir)
  jax.tree.map(np.testing.assert_array_equal, result.params,
               nn.meta.unbox(expected))
  # A model gin that does not match the checkpoint fails with the reason.
  with pytest.raises(ValueError, match="emb_dim: model 32 vs checkpoint 16"):
    _train(_tiny_t5(tiny_t5_config(emb_dim=32, **sizes)), toy_task,
           tmp_path / "bad", 0, initial_checkpoint_path=hf_dir)


# ---------------------------- Multi-device ----------------------------------

_MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np, optax
    sys.path.insert(0, {root!r})
    from train import models, network, partitioning, trainer
    import seqio.test_utils
    assert len(jax.devices()) == 8, jax.devices()
    config = network.T5Config(
        vocab_size=32, emb_dim=16, num_heads=2, num_encoder_layers=2,
        num_decoder_layers=2, head_dim=4, mlp_dim=32,
        mlp_activations=("gelu", "linear"), dropout_rate=0.0,
        logits_via_embedding=False)
    vocab = seqio.test_utils.sentencepiece_vocab()
    model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                       vocab)
    rng = np.random.RandomState(0)
    targets = rng.randint(3, 32, size=(8, 6)).astype(np.int32)
    batch = dict(
        encoder_input_tokens=rng.randint(1, 32, (8, 10)).astype(np.int32),
        decoder_input_tokens=np.pad(targets[:, :-1], ((0, 0), (1, 0))),
        decoder_target_tokens=targets,
        decoder_loss_weights=np.ones((8, 6), np.float32))
    shapes = dict(encoder_input_tokens=(8, 10), decoder_input_tokens=(8, 6))
    out = {{}}
    for name, shape in (("one", (1, 1)), ("mesh", (4, 2))):
      mesh = partitioning.make_mesh(mesh_shape=shape)
      opt = optax.adamw(0.01)
      state, shardings = trainer.create_train_state(
          model, opt, mesh=mesh, init_rng=jax.random.PRNGKey(0),
          input_shapes=shapes)
      step, _ = trainer.compile_steps(model, opt, mesh=mesh,
                                      state_shardings=shardings)
      losses = []
      for _ in range(3):
        state, metrics = step(
            state, jax.device_put(batch, partitioning.batch_sharding(mesh)),
            jax.random.PRNGKey(1))
        losses.append(float(metrics["loss"]))
      specs = [str(s.sharding.spec) for s in jax.tree.leaves(state.params)]
      opt_specs = [str(s.sharding.spec)
                   for s in jax.tree.leaves(state.opt_state)]
      out[name] = dict(losses=losses, specs=specs, opt_specs=opt_specs,
                       n_devices=len(jax.tree.leaves(
                           state.params)[0].sharding.device_set))
    print("RESULT" + json.dumps(out))
""")


def test_4x2_mesh_matches_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-c", _MULTI_DEVICE_SCRIPT.format(root=ROOT)],
      env=env, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
  out = json.loads(line[len("RESULT"):])
  np.testing.assert_allclose(out["mesh"]["losses"], out["one"]["losses"],
                             rtol=2e-5)
  assert out["one"]["losses"][-1] < out["one"]["losses"][0]
  # Some params really are split over the 'model' axis on the 4x2 mesh.
  assert any("model" in s for s in out["mesh"]["specs"])
  assert out["mesh"]["n_devices"] == 8
  # Adam's moments are sharded like their params (not replicated).
  assert sum("model" in s for s in out["mesh"]["opt_specs"]) == 2 * sum(
      "model" in s for s in out["mesh"]["specs"])


# ------------------------------ NaN safety ----------------------------------


@pytest.mark.parametrize("make_optimizer", [optax.adafactor, optax.sgd])
def test_huge_learning_rate_names_a_checkpoint_that_restarts(
    fake_model, toy_task, tmp_path, make_optimizer):
  # CHECKPOINT_PERIOD=1 and LEARNING_RATE=1e10: every step is a checkpoint
  # step, so the first weights that blow up are about to be saved.
  with pytest.raises(finite_checks.NonFiniteLossError) as e:
    _train(fake_model, toy_task, tmp_path, 30, optimizer=make_optimizer(1e10),
           checkpoint_period=1, keep_checkpoints=None)
  named = re.search(r"last good checkpoint is step (\w+)", str(e.value))
  # Before, the weights after the first 1e10 update were kept although
  # their next loss was NaN; now a checkpoint is named, and it restarts.
  assert named and named.group(1) != "None", str(e.value)
  saved = checkpointing.CheckpointManager(str(tmp_path)).all_steps()
  good = int(named.group(1))
  assert saved and max(saved) == good  # Nothing after it was written.
  assert f"it resumes from step {good}" in str(e.value)
  # Restarting the same command at a sane learning rate resumes from the
  # named checkpoint and trains on with finite losses.
  restarted = _train(fake_model, toy_task, tmp_path, good + 3,
                     optimizer=make_optimizer(0.01), checkpoint_period=1,
                     keep_checkpoints=None)
  assert restarted.start_step == good
  assert sorted(restarted.losses) == [good + 1, good + 2, good + 3]
  assert all(np.isfinite(v) for v in restarted.losses.values())


def test_weights_whose_next_loss_is_not_finite_are_not_saved():
  for metrics, problem in (
      ({"params_finite": 0.0, "loss": 1.0, "grad_norm": 1.0},
       "some weights are not finite"),
      ({"params_finite": 1.0, "loss": float("nan"), "grad_norm": 1.0},
       "their next loss is nan"),
      ({"params_finite": 1.0, "loss": 2.0, "grad_norm": float("inf")},
       "their next gradient norm is inf"),
  ):
    with pytest.raises(finite_checks.NonFiniteLossError) as e:
      finite_checks.check_before_save(201, metrics, 200)
    assert str(e.value).startswith(
        f"the weights after step 201 are not saved: {problem}. The last good "
        "checkpoint is step 200. Fix: lower LEARNING_RATE")
  finite_checks.check_before_save(
      201, {"params_finite": 1.0, "loss": 3.0, "grad_norm": 1e30}, 200)
  with pytest.raises(finite_checks.NonFiniteLossError,
                     match=r"No checkpoint was saved\. Fix: .*starts from "
                     "scratch"):
    finite_checks.check_before_save(
        1, {"params_finite": 0.0, "loss": 1.0, "grad_norm": 1.0}, None)


def test_check_step_is_what_the_next_train_step_computes(fake_model):
  optimizer = optax.adafactor(0.01)
  params = _init_params(fake_model)
  state = steps.TrainState(step=jnp.asarray(4, jnp.int32), params=params,
                             opt_state=optimizer.init(params))
  batch = _batch(4, seed=3)
  rng = jax.random.PRNGKey(9)
  _, metrics = jax.jit(steps.make_train_step(fake_model.loss_fn, optimizer))(
      state, batch, rng)
  check = jax.jit(steps.make_check_step(fake_model.loss_fn))(
      params, batch, rng, state.step)
  np.testing.assert_allclose(check["loss"], metrics["loss"], rtol=1e-6)
  np.testing.assert_allclose(check["grad_norm"], metrics["grad_norm"],
                             rtol=1e-6)
  assert float(check["params_finite"]) == 1.0
  bad = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.inf), params)
  assert float(jax.jit(steps.make_check_step(fake_model.loss_fn))(
      bad, batch, rng, state.step)["params_finite"]) == 0.0


# --------------------------- Checkpoint faults -------------------------------


def _data_files(step_dir):
  """The params' array files (the tiny arrays sit in the OCDBT manifests)."""
  return [os.path.join(d, f) for d, _, files in os.walk(step_dir / "params")
          for f in files if "ocdbt" in d or f.startswith("manifest")]


@pytest.mark.parametrize("fault", ["truncate", "delete"])
def test_unreadable_latest_checkpoint_is_named_and_fallback_resumes(
    fake_model, toy_task, tmp_path, capfd, fault):
  full = _train(fake_model, toy_task, tmp_path / "full", 6)
  model_dir = tmp_path / "run"
  _train(fake_model, toy_task, model_dir, 4)  # Checkpoints 2 and 4.
  for bad in _data_files(model_dir / "checkpoints" / "4"):
    if fault == "truncate":
      with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(bad) // 2)
    else:
      os.remove(bad)
  capfd.readouterr()
  with pytest.raises(checkpointing.UnreadableCheckpointError) as e:
    _train(fake_model, toy_task, model_dir, 6)
  step_dir = model_dir / "checkpoints" / "4"
  message = str(e.value)
  assert message.startswith(
      f"{step_dir}: checkpoint step 4 is unreadable or incomplete (")
  assert (f"Fix: use the previous checkpoint, step 2: `mv {step_dir} "
          f"{step_dir}.unreadable`") in message
  assert "--gin.RESTORE_FALLBACK=True" in message
  assert "\n" not in message
  assert step_dir.is_dir()  # Never deleted.
  err = capfd.readouterr().err
  assert "Event loop is closed" not in err and "Traceback" not in err

  resumed = _train(fake_model, toy_task, model_dir, 6, restore_fallback=True)
  assert resumed.start_step == 2
  assert f"moved it to {step_dir}.unreadable (not deleted)" in (
      capfd.readouterr().out)
  assert (model_dir / "checkpoints" / "4.unreadable").is_dir()
  for step in (3, 4, 5, 6):  # Bit-identical to an uninterrupted run.
    assert resumed.losses[step] == full.losses[step], step
  jax.tree.map(np.testing.assert_array_equal, resumed.params, full.params)


def test_read_only_model_dir_is_a_user_error(fake_model, toy_task, tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(errors.UserError,
                     match=r"file/run: MODEL_DIR is not writable"):
    _train(fake_model, toy_task, tmp_path / "file" / "run", 2)
  if os.geteuid() != 0:  # root writes anywhere.
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(errors.UserError, match="MODEL_DIR is not writable"):
      _train(fake_model, toy_task, tmp_path / "ro", 2)


@pytest.mark.parametrize("error, cause, fix", [
    (OSError(errno.ENOSPC, "No space left on device"),
     "no space left on the disk", "free space on that disk"),
    (PermissionError(errno.EACCES, "Permission denied"),
     "permission denied", "make the directory writable again"),
])
def test_failed_save_stops_at_once_and_keeps_the_last_checkpoint(
    fake_model, toy_task, tmp_path, capsys, error, cause, fix):
  real_save = ocp.CheckpointManager.save

  def failing_save(self, step, *args, **kwargs):
    if step == 4:  # What orbax leaves when the disk fills mid-write.
      os.makedirs(os.path.join(self.directory, "4.orbax-checkpoint-tmp-9"))
      raise error
    return real_save(self, step, *args, **kwargs)

  with mock.patch.object(ocp.CheckpointManager, "save", failing_save):
    with pytest.raises(checkpointing.SaveFailedError) as e:
      _train(fake_model, toy_task, tmp_path, 8)
  ckpt_dir = tmp_path / "checkpoints"
  assert str(e.value).startswith(
      f"{ckpt_dir}: saving checkpoint step 4 failed ({cause}); training "
      f"stopped and the last good checkpoint, step 2, is intact. Fix: {fix}")
  assert "\n" not in str(e.value)
  out = capsys.readouterr().out
  assert "step 4/8" in out and "step 5/8" not in out  # Stopped at once.
  assert sorted(os.listdir(ckpt_dir)) == ["2"]  # The partial one removed.
  assert not (tmp_path / "train.lock").exists()
  resumed = _train(fake_model, toy_task, tmp_path, 4)
  assert resumed.start_step == 2 and sorted(resumed.losses) == [3, 4]


def test_unknown_save_error_is_still_a_bug(fake_model, toy_task, tmp_path):
  def buggy_save(self, step, *args, **kwargs):
    raise TypeError("a bug")

  with mock.patch.object(ocp.CheckpointManager, "save", buggy_save):
    with pytest.raises(TypeError, match="a bug"):
      _train(fake_model, toy_task, tmp_path, 2)
