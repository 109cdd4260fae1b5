"""Parity with Hugging Face transformers' PyTorch T5 (the reference).

A small random `T5ForConditionalGeneration` of each variant (T5 1.0: ReLU,
tied embeddings; T5 1.1: gated-GELU, untied logits) is saved, imported with
`hf_import.load_pretrained`, and run on the same batch: logits must agree in
float32, and greedy decoding must produce the same tokens as HF's
`generate`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio.test_utils

from train import hf_import
from train import models
from train import network

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VARIANTS = {
    "t5_1_0": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "t5_1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


def _hf_model(tmp_path, variant, vocab_size=40):
  # 2 encoder vs 3 decoder layers checks the stacks are mapped apart (HF's
  # KV cache mis-sizes such models, so the reference runs with use_cache off).
  torch.manual_seed(0)
  config = transformers.T5Config(
      vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=48, num_layers=2,
      num_decoder_layers=3, num_heads=4, dropout_rate=0.0,
      relative_attention_num_buckets=8, relative_attention_max_distance=20,
      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
      **VARIANTS[variant])
  model = transformers.T5ForConditionalGeneration(config).eval()
  # Random init is tiny for some weights; widen it so every path matters.
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0.0, 0.5)
  model.save_pretrained(tmp_path / variant)
  return model, str(tmp_path / variant)


def _batch(vocab_size, seed=0):
  rng = np.random.RandomState(seed)
  enc = rng.randint(2, vocab_size, (3, 30)).astype(np.int32)
  enc[0, 22:] = 0  # padding in the encoder
  enc[1, 9:] = 0
  targets = rng.randint(2, vocab_size, (3, 25)).astype(np.int32)
  targets[2, 12:] = 0
  dec_in = np.pad(targets[:, :-1], ((0, 0), (1, 0)))
  return enc, dec_in, targets


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_match_hugging_face(tmp_path, variant):
  hf, path = _hf_model(tmp_path, variant)
  config, params = hf_import.load_pretrained(path)
  assert config.mlp_activations == (
      ("relu",) if variant == "t5_1_0" else ("gelu", "linear"))
  assert config.logits_via_embedding == (variant == "t5_1_0")
  enc, dec_in, targets = _batch(config.vocab_size)
  # Distances up to 29 exercise the log-spaced buckets (max_distance 20).
  ours = network.Transformer(config).apply(
      {"params": params}, jnp.asarray(enc), jnp.asarray(dec_in),
      jnp.asarray(targets), enable_dropout=False)
  with torch.no_grad():
    ref = hf(input_ids=torch.tensor(enc, dtype=torch.long),
             attention_mask=torch.tensor(enc > 0, dtype=torch.long),
             decoder_input_ids=torch.tensor(dec_in, dtype=torch.long),
             use_cache=False).logits
  ref = ref.numpy()
  valid = targets > 0  # HF has no decoder padding mask; compare real tokens
  assert np.abs(ref).max() > 0.3  # the check is not vacuous
  np.testing.assert_allclose(np.asarray(ours)[valid], ref[valid], rtol=1e-4,
                             atol=1e-4)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_greedy_decoding_matches_hugging_face(tmp_path, variant):
  hf, path = _hf_model(tmp_path, variant)
  config, params = hf_import.load_pretrained(path)
  vocab = seqio.test_utils.sentencepiece_vocab()  # eos_id 1, like HF's
  model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                     vocab)
  enc, _, _ = _batch(config.vocab_size, seed=1)
  length = 12
  ours = np.asarray(model.predict_batch(
      params, {"encoder_input_tokens": enc}, max_decode_length=length))
  with torch.no_grad():
    ref = hf.generate(
        input_ids=torch.tensor(enc, dtype=torch.long),
        attention_mask=torch.tensor(enc > 0, dtype=torch.long),
        do_sample=False, num_beams=1, max_new_tokens=length,
        min_new_tokens=0, use_cache=False).numpy()[:, 1:]  # drop the start token
  ref = np.pad(ref, ((0, 0), (0, length - ref.shape[1])))
  np.testing.assert_array_equal(ours, ref)
  # Decoded outputs are non-trivial (not all the same token).
  assert len(np.unique(ours)) > 3


def test_config_mismatch_and_missing_files_are_clear(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_import.load_pretrained(str(tmp_path))
  _, path = _hf_model(tmp_path, "t5_1_1")
  config, params = hf_import.load_pretrained(path)
  state = {"shared.weight": params["token_embedder"]["embedding"]}
  with pytest.raises(KeyError, match="relative_attention_bias"):
    hf_import.convert_state_dict(state, config)
  with pytest.raises(ValueError, match="feed_forward_proj"):
    hf_import.config_from_hf(dict(feed_forward_proj="swiglu-x", vocab_size=8,
                                  d_model=4, num_heads=1, num_layers=1,
                                  d_kv=4, d_ff=8))


def test_pytorch_bin_state_dict_loads_like_safetensors(tmp_path):
  hf, path = _hf_model(tmp_path, "t5_1_0")
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "config.json").write_text(
      (tmp_path / "t5_1_0" / "config.json").read_text())
  torch.save(hf.state_dict(), bin_dir / "pytorch_model.bin")
  _, a = hf_import.load_pretrained(path)
  _, b = hf_import.load_pretrained(str(bin_dir))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_transformers_4_checkpoint_with_its_own_lm_head(tmp_path):
  """Hub T5 1.1 checkpoints (transformers 4) store a separate lm_head."""
  import json  # pylint: disable=g-import-not-at-top
  hf, path = _hf_model(tmp_path, "t5_1_1")
  config = json.loads((tmp_path / "t5_1_1" / "config.json").read_text())
  config.pop("scale_decoder_outputs", None)  # as transformers 4 wrote it
  config["tie_word_embeddings"] = False
  old = tmp_path / "v4"
  old.mkdir()
  (old / "config.json").write_text(json.dumps(config))
  state = hf.state_dict()
  lm_head = torch.randn_like(state["shared.weight"])
  state = dict(state, **{"lm_head.weight": lm_head})
  torch.save(state, old / "pytorch_model.bin")
  ours, params = hf_import.load_pretrained(str(old))
  assert not ours.logits_via_embedding
  np.testing.assert_array_equal(params["decoder"]["logits_dense"]["kernel"],
                                lm_head.numpy().T)
  # T5 1.0 written by transformers 4: tied and rescaled.
  config.update(tie_word_embeddings=True, feed_forward_proj="relu")
  assert hf_import.config_from_hf(config).logits_via_embedding
