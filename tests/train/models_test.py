"""The model wrapper: loss, scoring, candidate scoring and decoding agree.

Each check compares two independent routes to the same number (a full
forward pass vs the cached decoder, per-pair scoring vs batched candidate
scoring, packed vs unpacked batches), on a tiny random T5 of each variant.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio.test_utils

from train import models
from train import network

VOCAB = seqio.test_utils.sentencepiece_vocab()  # 26 pieces, eos 1


def _model(variant="t5_1_1", **kw):
  fields = dict(
      vocab_size=32, emb_dim=32, num_heads=2, num_encoder_layers=2,
      num_decoder_layers=2, head_dim=8, mlp_dim=48, dropout_rate=0.0,
      mlp_activations=("gelu", "linear") if variant == "t5_1_1" else (
          "relu",),
      logits_via_embedding=variant == "t5_1_0")
  fields.update(kw)
  model = models.EncoderDecoderModel(
      network.Transformer(network.T5Config(**fields)), VOCAB, VOCAB)
  variables = model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (2, 12), "decoder_input_tokens": (2, 7)})
  return model, nn.meta.unbox(variables["params"])


def _batch(targets, enc_len=12, seed=0):
  rng = np.random.RandomState(seed)
  n, length = len(targets), max(len(t) for t in targets)
  enc = rng.randint(2, 32, (n, enc_len)).astype(np.int32)
  enc[0, enc_len // 2:] = 0
  tgt = np.zeros((n, length), np.int32)
  for i, t in enumerate(targets):
    tgt[i, : len(t)] = t
  return {
      "encoder_input_tokens": enc,
      "decoder_input_tokens": np.pad(tgt[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": (tgt > 0).astype(np.float32),
  }


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_score_batch_is_the_sum_of_target_log_probs(variant):
  model, params = _model(variant)
  batch = _batch([[5, 6, 7, 1], [9, 1]])
  logits = model.module.apply(
      {"params": params}, batch["encoder_input_tokens"],
      batch["decoder_input_tokens"], batch["decoder_target_tokens"],
      enable_dropout=False)
  lp = np.asarray(jax.nn.log_softmax(logits))
  expected = [lp[0, 0, 5] + lp[0, 1, 6] + lp[0, 2, 7] + lp[0, 3, 1],
              lp[1, 0, 9] + lp[1, 1, 1]]
  np.testing.assert_allclose(model.score_batch(params, batch), expected,
                             rtol=1e-5)
  # The summed loss without z-loss is minus the summed scores.
  model.z_loss = 0.0
  loss, metrics = model.loss_fn(params, batch, None)
  assert float(loss) == pytest.approx(-sum(expected), rel=1e-5)
  assert 0.0 <= float(metrics["accuracy"]) <= 1.0


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_accuracy_counts_targets_with_the_top_logit(variant):
  model, params = _model(variant)
  enc = _batch([[1]], seed=2)["encoder_input_tokens"][:1]
  # Greedy targets by repeated full forward passes (teacher forcing on the
  # model's own argmax), so every position's label has the top logit.
  length = 6
  tgt = np.zeros((1, length), np.int32)
  for t in range(length):
    logits = model.module.apply(
        {"params": params}, enc, np.pad(tgt[:, :-1], ((0, 0), (1, 0))),
        np.maximum(tgt, 1), enable_dropout=False)
    tgt[0, t] = int(np.argmax(logits[0, t]))
  tgt = np.maximum(tgt, 2)  # no padding/EOS ids among the labels
  batch = {"encoder_input_tokens": enc,
           "decoder_input_tokens": np.pad(tgt[:, :-1], ((0, 0), (1, 0))),
           "decoder_target_tokens": tgt,
           "decoder_loss_weights": np.ones((1, length), np.float32)}
  logits = np.asarray(model._logits(params, batch))  # pylint: disable=protected-access
  expected = np.argmax(logits, -1) == tgt
  _, metrics = model.loss_fn(params, batch, None)
  assert float(metrics["accuracy"]) == pytest.approx(expected.mean())
  # Changing the last label changes no logit (it is no decoder input) and
  # makes exactly that position wrong.
  last = tgt.copy()
  last[0, -1] = 2 if tgt[0, -1] != 2 else 3
  batch["decoder_target_tokens"] = last
  _, metrics = model.loss_fn(params, batch, None)
  assert float(metrics["accuracy"]) == pytest.approx(
      (expected[0, :-1].sum() + (last[0, -1] == np.argmax(logits[0, -1])))
      / length)
  assert expected[0, :-1].sum() > 0  # the check is not vacuous


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
@pytest.mark.parametrize("batch_rows", [4, 128])
def test_score_candidates_matches_pairwise_scoring(variant, batch_rows,
                                                   monkeypatch):
  """Shared prefixes, several chunks (one padded) and logsumexp blocks:
  each score equals `score_batch` of that (context, candidate) pair, a
  full log-softmax at every position."""
  model, params = _model(variant)
  model.candidate_batch_size = batch_rows  # 4: several chunks
  monkeypatch.setattr(models, "PREFIX_BLOCK_ROWS", 3 if batch_rows == 4
                      else 256)  # several logsumexp blocks, a padded one
  contexts = _batch([[3], [3]], seed=1)["encoder_input_tokens"]
  candidates = [[5, 6, 1], [9, 1], [4, 4, 4, 1], [7, 1], [8, 2, 1],
                [5, 6, 7, 1], [5, 1], [4, 4, 1]]
  cand = np.zeros((len(candidates), 4), np.int32)
  for i, c in enumerate(candidates):
    cand[i, : len(c)] = c
  got = np.asarray(model.score_candidates(params, contexts, cand))
  assert got.shape == (2, len(candidates))
  for i in range(2):
    batch = _batch(candidates, seed=1)
    batch["encoder_input_tokens"] = np.repeat(contexts[i: i + 1],
                                              len(candidates), 0)
    np.testing.assert_allclose(got[i], model.score_batch(params, batch),
                               rtol=1e-5, atol=1e-5)


def test_candidate_prefixes_by_hand():
  """The distinct prefixes of [5 6 1], [5 1], [5 6 7 1], [9 1], []."""
  cand = np.array([[5, 6, 1, 0], [5, 1, 0, 0], [5, 6, 7, 1], [9, 1, 0, 0],
                   [0, 0, 0, 0]], np.int32)
  p = models.candidate_prefixes(cand)
  # Prefixes: 0 = (), 1 = (5), 2 = (9), 3 = (5 6), 4 = (5 6 7): ids are
  # given level by level, in token order within a level.
  np.testing.assert_array_equal(p.ids, [[0, 1, 3, -1], [0, 1, -1, -1],
                                        [0, 1, 3, 4], [0, 2, -1, -1],
                                        [-1, -1, -1, -1]])
  assert p.num_prefixes == 5
  np.testing.assert_array_equal(p.depth, [0, 1, 1, 2, 3])
  np.testing.assert_array_equal(p.lengths, [3, 2, 4, 2, 0])
  # By length: [] (row 0), [5 1], [9 1], [5 6 1], [5 6 7 1].
  np.testing.assert_array_equal(p.order, [4, 1, 3, 0, 2])
  # Where each prefix is first met in that order: () and (5) in [5 1]
  # (row 1), (9) in [9 1] (row 2), (5 6) in [5 6 1] (row 3), (5 6 7) in
  # [5 6 7 1] (row 4).
  np.testing.assert_array_equal(p.first_row, [1, 1, 2, 3, 4])
  np.testing.assert_array_equal(p.owner_chunk(0, 2), [0, 1])
  np.testing.assert_array_equal(p.owner_chunk(1, 2), [2, 3])
  np.testing.assert_array_equal(p.owner_chunk(2, 2), [4])


def test_decoder_rows_per_context_is_explicit():
  """Folding decoder rows onto encoded rows needs `rows_per_context`."""
  model, params = _model()
  batch = _batch([[5, 6, 1], [9, 1], [4, 4, 1], [7, 1]], seed=2)
  enc = batch["encoder_input_tokens"][:2]  # 2 contexts x 2 candidates.
  module = model.module
  encoded = module.apply({"params": params}, enc, enable_dropout=False,
                         method=module.encode)
  folded = module.apply(
      {"params": params}, encoded, enc, batch["decoder_input_tokens"],
      batch["decoder_target_tokens"], enable_dropout=False,
      rows_per_context=2, method=module.decode)
  # The same as giving every decoder row its own copy of its context.
  tiled = np.repeat(enc, 2, 0)
  expected = module.apply(
      {"params": params}, tiled, batch["decoder_input_tokens"],
      batch["decoder_target_tokens"], enable_dropout=False)
  real = batch["decoder_target_tokens"] > 0  # Padding rows differ in masks.
  np.testing.assert_allclose(np.asarray(folded)[real],
                             np.asarray(expected)[real], rtol=1e-5,
                             atol=1e-5)
  # A decoder batch that is not rows_per_context x the encoded batch fails
  # instead of folding silently.
  with pytest.raises(ValueError, match="queries_per_key_row"):
    module.apply(
        {"params": params}, encoded[:1], enc[:1],
        batch["decoder_input_tokens"], batch["decoder_target_tokens"],
        enable_dropout=False, rows_per_context=2, method=module.decode)


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_cached_greedy_decoding_matches_full_forward_argmax(variant):
  model, params = _model(variant)
  batch = _batch([[3], [3]], seed=2)
  tokens, scores = model.predict_batch(
      params, {"encoder_input_tokens": batch["encoder_input_tokens"]},
      max_decode_length=8, return_scores=True)
  tokens = np.asarray(tokens)
  # Re-run the decoder without a cache on the decoded prefix: each token is
  # the argmax of the full forward pass at its position.
  dec_in = np.pad(tokens[:, :-1], ((0, 0), (1, 0)))
  logits = model.module.apply(
      {"params": params}, batch["encoder_input_tokens"], dec_in,
      np.ones_like(tokens), enable_dropout=False)
  for row in range(2):
    for t in range(8):
      assert tokens[row, t] == int(np.argmax(logits[row, t]))
      if tokens[row, t] == VOCAB.eos_id:
        break
  # The returned scores are the log-likelihood of the output up to EOS.
  lp = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)),
                          tokens[..., None], axis=-1)[..., 0]
  is_eos = np.cumsum(tokens == VOCAB.eos_id, axis=1)
  upto_eos = (is_eos == 0) | ((is_eos == 1) & (tokens == VOCAB.eos_id))
  np.testing.assert_allclose(scores, np.sum(lp * upto_eos, axis=1),
                             rtol=1e-4)


def test_beam_search_scores_at_least_greedy_and_one_beam_is_greedy():
  model, params = _model()
  batch = {"encoder_input_tokens": _batch([[3]] * 3, seed=3)[
      "encoder_input_tokens"]}
  greedy, g_scores = model.predict_batch(params, batch, max_decode_length=6,
                                         return_scores=True)
  one, _ = model.predict_batch(params, batch, decode_method="beam",
                               num_beams=1, max_decode_length=6,
                               return_scores=True, alpha=0.0)
  np.testing.assert_array_equal(greedy, one)
  beam, b_scores = model.predict_batch(
      params, batch, decode_method="beam", num_beams=8, max_decode_length=6,
      return_scores=True, alpha=0.0)
  assert beam.shape == greedy.shape
  assert np.all(np.asarray(b_scores) >= np.asarray(g_scores) - 1e-4)


def test_sampling_is_seeded():
  model, params = _model()
  batch = {"encoder_input_tokens": _batch([[3]] * 4, seed=4)[
      "encoder_input_tokens"]}
  kw = dict(decode_method="sample", temperature=2.0, max_decode_length=6)
  a = model.predict_batch(params, batch, rng=jax.random.PRNGKey(0), **kw)
  b = model.predict_batch(params, batch, rng=jax.random.PRNGKey(0), **kw)
  c = model.predict_batch(params, batch, rng=jax.random.PRNGKey(1), **kw)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  with pytest.raises(ValueError, match="decode_method"):
    model.predict_batch(params, batch, decode_method="nucleus",
                        max_decode_length=2)


def test_packed_batch_has_the_same_loss_as_unpacked():
  model, params = _model()
  model.z_loss = 0.0
  one = _batch([[5, 6, 1], [9, 8, 7, 1]], enc_len=5, seed=5)
  one["encoder_input_tokens"][0] = [4, 5, 1, 0, 0]
  one["encoder_input_tokens"][1] = [7, 7, 8, 1, 0]
  unpacked, _ = model.loss_fn(params, one, None)
  # Both examples in one row, segment ids 1 and 2.
  packed = {
      "encoder_input_tokens": np.array([[4, 5, 1, 7, 7, 8, 1, 0]]),
      "encoder_segment_ids": np.array([[1, 1, 1, 2, 2, 2, 2, 0]]),
      "decoder_target_tokens": np.array([[5, 6, 1, 9, 8, 7, 1, 0]]),
      "decoder_input_tokens": np.array([[0, 5, 6, 0, 9, 8, 7, 0]]),
      "decoder_segment_ids": np.array([[1, 1, 1, 2, 2, 2, 2, 0]]),
      "decoder_loss_weights": np.array([[1, 1, 1, 1, 1, 1, 1, 0]],
                                       np.float32),
  }
  got, _ = model.loss_fn(params, packed, None)
  assert float(got) == pytest.approx(float(unpacked), rel=1e-5)


def test_dropout_only_with_an_rng():
  model, params = _model(dropout_rate=0.3)
  batch = _batch([[5, 6, 1], [9, 1]])
  a, _ = model.loss_fn(params, batch, None)
  b, _ = model.loss_fn(params, batch, None)
  c, _ = model.loss_fn(params, batch, jax.random.PRNGKey(0))
  assert float(a) == float(b)
  assert float(c) != float(a)


def test_params_carry_logical_axis_names():
  model, _ = _model()
  variables = model.get_initial_variables(
      jax.random.PRNGKey(0),
      {"encoder_input_tokens": (1, 4), "decoder_input_tokens": (1, 4)})
  specs = nn.get_partition_spec(variables["params"])
  assert tuple(specs["token_embedder"]["embedding"]) == ("vocab", "embed")
  layer = specs["decoder"]["layers_1"]
  assert tuple(layer["mlp"]["wi_0"]["kernel"]) == ("embed", "mlp")
  assert tuple(layer["self_attention"]["query"]["kernel"]) == (
      "embed", "heads", "kv")
  assert tuple(layer["encoder_decoder_attention"]["out"]["kernel"]) == (
      "joined_kv", "embed")
  assert tuple(specs["decoder"]["logits_dense"]["kernel"]) == (
      "embed", "vocab")
  leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(
      x, jax.sharding.PartitionSpec))
  assert all(len(s) > 0 for s in leaves)  # every parameter is annotated


def test_bfloat16_activations_track_float32():
  model32, params = _model()
  model16, _ = _model(dtype=jnp.bfloat16)
  batch = _batch([[5, 6, 7, 1], [9, 1]])
  a = np.asarray(model32.score_batch(params, batch))
  b = np.asarray(model16.score_batch(params, batch))
  assert b.dtype == np.float32  # logits and scores stay float32
  np.testing.assert_allclose(b, a, rtol=0.05)
  assert not np.array_equal(a, b)  # bf16 really ran
