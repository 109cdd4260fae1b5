"""Parity with Hugging Face transformers' PyTorch T5 (the reference).

A small random `T5ForConditionalGeneration` of each variant (T5 1.0: ReLU,
tied embeddings; T5 1.1: gated-GELU, untied logits) is saved, imported with
`hf_import.load_pretrained`, and run on the same batch: logits must agree in
float32, and greedy decoding must produce the same tokens as HF's
`generate`.

The Hugging Face side runs in its own process (tests/train/hf_reference.py,
through the `hf_reference` fixture): torch/triton segfault when imported
next to TensorFlow, so this process never imports torch or transformers.
"""

import importlib
import json
import os
import pickle
import sys
import zipfile

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import seqio.test_utils

from train import hf_import
from train import models
from train import network

VOCAB_SIZE = 40
DECODE_LENGTH = 12
VARIANTS = {
    "t5_1_0": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "t5_1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


def _hf_config(variant):
  # 2 encoder vs 3 decoder layers checks the stacks are mapped apart.
  return dict(
      vocab_size=VOCAB_SIZE, d_model=32, d_kv=8, d_ff=48, num_layers=2,
      num_decoder_layers=3, num_heads=4, dropout_rate=0.0,
      relative_attention_num_buckets=8, relative_attention_max_distance=20,
      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
      **VARIANTS[variant])


def _batch(vocab_size, seed=0):
  rng = np.random.RandomState(seed)
  enc = rng.randint(2, vocab_size, (3, 30)).astype(np.int32)
  enc[0, 22:] = 0  # padding in the encoder
  enc[1, 9:] = 0
  targets = rng.randint(2, vocab_size, (3, 25)).astype(np.int32)
  targets[2, 12:] = 0
  dec_in = np.pad(targets[:, :-1], ((0, 0), (1, 0)))
  return enc, dec_in, targets


@pytest.fixture(scope="module")
def reference(hf_reference, tmp_path_factory):
  """Both variants built once by the HF process; their dirs and outputs."""
  root = tmp_path_factory.mktemp("hf")
  enc, dec_in, _ = _batch(VOCAB_SIZE)
  gen_enc, _, _ = _batch(VOCAB_SIZE, seed=1)
  spec, arrays = {"models": {}}, {}
  for variant in VARIANTS:
    (root / f"{variant}_bin").mkdir()
    (root / f"{variant}_v4").mkdir()
    spec["models"][variant] = dict(
        config=_hf_config(variant), seed=0, normal_std=0.5,
        save_pretrained=str(root / variant),
        save_bin=str(root / f"{variant}_bin" / "pytorch_model.bin"),
        save_bin_with_lm_head=str(root / f"{variant}_v4" /
                                  "pytorch_model.bin"),
        logits=True, generate_length=DECODE_LENGTH)
    arrays[f"{variant}.encoder_input_tokens"] = enc
    arrays[f"{variant}.decoder_input_tokens"] = dec_in
    arrays[f"{variant}.generate_input_tokens"] = gen_enc
  spec["tensors"] = str(root / "tensors.bin")
  out = hf_reference(str(root), spec, arrays)
  return root, out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_match_hugging_face(reference, variant):
  root, out = reference
  config, params = hf_import.load_pretrained(str(root / variant))
  assert config.mlp_activations == (
      ("relu",) if variant == "t5_1_0" else ("gelu", "linear"))
  assert config.logits_via_embedding == (variant == "t5_1_0")
  enc, dec_in, targets = _batch(config.vocab_size)
  # Distances up to 29 exercise the log-spaced buckets (max_distance 20).
  ours = network.Transformer(config).apply(
      {"params": params}, jnp.asarray(enc), jnp.asarray(dec_in),
      jnp.asarray(targets), enable_dropout=False)
  ref = out[f"{variant}.logits"]
  assert ref.shape == (3, 25, VOCAB_SIZE)
  valid = targets > 0  # HF has no decoder padding mask; compare real tokens
  assert np.abs(ref).max() > 0.3  # the check is not vacuous
  np.testing.assert_allclose(np.asarray(ours)[valid], ref[valid], rtol=1e-4,
                             atol=1e-4)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_greedy_decoding_matches_hugging_face(reference, variant):
  root, out = reference
  config, params = hf_import.load_pretrained(str(root / variant))
  vocab = seqio.test_utils.sentencepiece_vocab()  # eos_id 1, like HF's
  model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                     vocab)
  enc, _, _ = _batch(config.vocab_size, seed=1)
  ours = np.asarray(model.predict_batch(
      params, {"encoder_input_tokens": enc}, max_decode_length=DECODE_LENGTH))
  ref = out[f"{variant}.generated"]
  ref = np.pad(ref, ((0, 0), (0, DECODE_LENGTH - ref.shape[1])))
  np.testing.assert_array_equal(ours, ref)
  # Decoded outputs are non-trivial (not all the same token).
  assert len(np.unique(ours)) > 3


def test_config_mismatch_and_missing_files_are_clear(reference, tmp_path):
  root, _ = reference
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_import.load_pretrained(str(tmp_path))
  config, params = hf_import.load_pretrained(str(root / "t5_1_1"))
  state = {"shared.weight": params["token_embedder"]["embedding"]}
  with pytest.raises(KeyError, match="relative_attention_bias"):
    hf_import.convert_state_dict(state, config)
  with pytest.raises(ValueError, match="feed_forward_proj"):
    hf_import.config_from_hf(dict(feed_forward_proj="swiglu-x", vocab_size=8,
                                  d_model=4, num_heads=1, num_layers=1,
                                  d_kv=4, d_ff=8))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pytorch_bin_state_dict_loads_like_safetensors(reference, variant):
  """torch.save'd state dicts are read without torch, equal to safetensors."""
  root, _ = reference
  bin_dir = root / f"{variant}_bin"
  (bin_dir / "config.json").write_text(
      (root / variant / "config.json").read_text())
  _, a = hf_import.load_pretrained(str(root / variant))
  _, b = hf_import.load_pretrained(str(bin_dir))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x, y)


def test_transformers_4_checkpoint_with_its_own_lm_head(reference):
  """Hub T5 1.1 checkpoints (transformers 4) store a separate lm_head."""
  root, out = reference
  config = json.loads((root / "t5_1_1" / "config.json").read_text())
  config.pop("scale_decoder_outputs", None)  # as transformers 4 wrote it
  config["tie_word_embeddings"] = False
  old = root / "t5_1_1_v4"
  (old / "config.json").write_text(json.dumps(config))
  ours, params = hf_import.load_pretrained(str(old))
  assert not ours.logits_via_embedding
  lm_head = out["t5_1_1.lm_head"]
  assert lm_head.shape == (VOCAB_SIZE, 32)
  np.testing.assert_array_equal(params["decoder"]["logits_dense"]["kernel"],
                                lm_head.T)
  # T5 1.0 written by transformers 4: tied and rescaled.
  config.update(tie_word_embeddings=True, feed_forward_proj="relu")
  assert hf_import.config_from_hf(config).logits_via_embedding


def test_torch_bin_reader_rebuilds_views_dtypes_and_shared_storage(
    reference):
  root, out = reference
  got = hf_import.read_torch_state_dict(str(root / "tensors.bin"))
  expected = {k[len("tensors."):]: v for k, v in out.items()
              if k.startswith("tensors.")}
  assert set(got) == set(expected) and len(got) == 9
  assert got["bfloat16"].dtype == ml_dtypes.bfloat16
  assert got["float16"].dtype == np.float16
  assert got["float64"].dtype == np.float64
  assert got["int64"].dtype == np.int64
  assert got["transposed"].shape == (5, 6) and got["slice"].shape == (4, 3)
  assert got["scalar"].shape == ()
  for key, value in expected.items():
    np.testing.assert_array_equal(np.asarray(got[key], value.dtype), value,
                                  err_msg=key)


class _RunsCode:

  def __reduce__(self):
    return (os.system, ("touch pwned",))


def test_torch_bin_reader_refuses_anything_but_tensors(tmp_path,
                                                        monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = tmp_path / "evil.bin"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"w": _RunsCode()}))
  with pytest.raises(ValueError, match="refusing to unpickle .*system"):
    hf_import.read_torch_state_dict(str(path))
  assert not (tmp_path / "pwned").exists()
  (tmp_path / "legacy.bin").write_bytes(pickle.dumps({"w": 1}))
  with pytest.raises(ValueError, match="not a zip-format"):
    hf_import.read_torch_state_dict(str(tmp_path / "legacy.bin"))


def test_torch_is_kept_out_of_this_process():
  """tests/conftest.py refuses torch here (TensorFlow is loaded)."""
  assert "tensorflow" in sys.modules
  for name in ("torch", "triton", "transformers"):
    with pytest.raises(ModuleNotFoundError, match="hf_reference.py"):
      importlib.import_module(name)
    assert name not in sys.modules
