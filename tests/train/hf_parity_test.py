"""Parity with Hugging Face transformers' PyTorch T5 (the reference).

The default suite needs no torch: tests/testdata/hf_parity/ holds small
random T5 models written by transformers (T5 1.0: ReLU, tied, rescaled
logits; T5 1.1: gated-GELU, separate logits; 32 buckets with gated-ReLU),
their inputs and transformers' logits and greedy decodes, all written by
scripts/make_hf_goldens.py. Each model is imported with
`hf_import.load_pretrained` and run on the same batch: logits must agree in
float32 and greedy decoding must produce the same tokens.

`test_installed_transformers_agrees` runs the same checks against the
transformers installed here (the parity extra, `pip install -e
".[parity]"`); it is skipped without it. The script runs in its own process:
torch never shares one with TensorFlow (triton segfaults next to it).
"""

import importlib
import importlib.metadata
import json
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import seqio.test_utils

from crs_runtime import errors
from train import hf_import
from train import models
from train import network

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "tests" / "testdata" / "hf_parity"
SCRIPT = ROOT / "scripts" / "make_hf_goldens.py"
MODELS = ("t5_1_0", "t5_1_1", "t5_1_1_buckets")


def _load(directory):
  with np.load(directory / "goldens.npz") as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def goldens():
  return _load(GOLDENS)


def check_logits(directory, golden, name):
  """Our logits of model `name` in `directory` equal transformers'."""
  config, params = hf_import.load_pretrained(str(directory / name))
  targets = golden["decoder_target_tokens"]
  ours = network.Transformer(config).apply(
      {"params": params}, jnp.asarray(golden["encoder_input_tokens"]),
      jnp.asarray(golden["decoder_input_tokens"]), jnp.asarray(targets),
      enable_dropout=False)
  ref = golden[f"{name}.logits"]
  assert ref.shape == (3, 25, config.vocab_size)
  valid = targets > 0  # HF has no decoder padding mask; compare real tokens
  assert 0 < valid.sum() < valid.size  # padding is exercised
  scale = np.abs(ref[valid]).max()
  assert scale > 0.3  # the check is not vacuous
  # float32 rounding grows with the logits' scale: on t5_1_1 (max |logit|
  # 6.6) transformers' own float32 logits are 8.7e-5 from its float64 ones.
  np.testing.assert_allclose(np.asarray(ours)[valid], ref[valid], rtol=1e-4,
                             atol=1e-4 * max(1.0, scale))


def check_greedy_decoding(directory, golden, name):
  """Our greedy decode of model `name` equals transformers' generate."""
  config, params = hf_import.load_pretrained(str(directory / name))
  vocab = seqio.test_utils.sentencepiece_vocab()  # eos_id 1, like HF's
  model = models.EncoderDecoderModel(network.Transformer(config), vocab,
                                     vocab)
  ref = golden[f"{name}.generated"]
  ours = np.asarray(model.predict_batch(
      params, {"encoder_input_tokens": golden["generate_input_tokens"]},
      max_decode_length=ref.shape[1]))
  np.testing.assert_array_equal(ours, ref)
  assert len(np.unique(ours)) > 3  # not all the same token


@pytest.mark.parametrize("name", MODELS)
def test_logits_match_hugging_face(goldens, name):
  check_logits(GOLDENS, goldens, name)


@pytest.mark.parametrize("name", MODELS)
def test_greedy_decoding_matches_hugging_face(goldens, name):
  check_greedy_decoding(GOLDENS, goldens, name)


def test_configs_read_as_each_variant():
  expected = {"t5_1_0": (("relu",), True, 8, 20),
              "t5_1_1": (("gelu", "linear"), False, 8, 20),
              "t5_1_1_buckets": (("relu", "linear"), False, 32, 128)}
  for name, (activations, tied, buckets, distance) in expected.items():
    config = hf_import.config_from_hf(
        json.loads((GOLDENS / name / "config.json").read_text()))
    assert config.mlp_activations == activations, name
    assert config.logits_via_embedding == tied, name
    assert config.relative_attention_num_buckets == buckets, name
    assert config.relative_attention_max_distance == distance, name


def test_installed_transformers_agrees(tmp_path):
  """The live comparison: fresh goldens from the installed transformers."""
  for name in ("torch", "transformers"):
    try:
      importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pytest.skip(f"live Hugging Face parity needs {name} (pip install -e "
                  "\".[parity]\"); the committed goldens were checked")
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
             TOKENIZERS_PARALLELISM="false")
  proc = subprocess.run(
      [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
      capture_output=True, text=True, env=env, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  golden = _load(tmp_path)
  for name in MODELS:
    check_logits(tmp_path, golden, name)
    check_greedy_decoding(tmp_path, golden, name)


def test_config_mismatch_and_missing_files_are_clear(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_import.load_pretrained(str(tmp_path))
  config, params = hf_import.load_pretrained(str(GOLDENS / "t5_1_1"))
  state = {"shared.weight": params["token_embedder"]["embedding"]}
  with pytest.raises(KeyError, match="relative_attention_bias"):
    hf_import.convert_state_dict(state, config)
  with pytest.raises(ValueError, match="feed_forward_proj"):
    hf_import.config_from_hf(dict(feed_forward_proj="swiglu-x", vocab_size=8,
                                  d_model=4, num_heads=1, num_layers=1,
                                  d_kv=4, d_ff=8))


def test_pytorch_bin_state_dict_loads_like_safetensors():
  """torch.save'd state dicts are read without torch, equal to safetensors."""
  _, a = hf_import.load_pretrained(str(GOLDENS / "t5_1_0"))
  _, b = hf_import.load_pretrained(str(GOLDENS / "t5_1_0_bin"))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x, y)


def test_transformers_4_checkpoint_with_its_own_lm_head(goldens):
  """Hub T5 1.1 checkpoints (transformers 4) store a separate lm_head."""
  old = GOLDENS / "t5_1_1_v4"
  config = json.loads((old / "config.json").read_text())
  assert "scale_decoder_outputs" not in config
  ours, params = hf_import.load_pretrained(str(old))
  assert not ours.logits_via_embedding
  lm_head = goldens["t5_1_1_v4.lm_head"]
  assert lm_head.shape == (ours.vocab_size, ours.emb_dim)
  np.testing.assert_array_equal(params["decoder"]["logits_dense"]["kernel"],
                                lm_head.T)
  # T5 1.0 written by transformers 4: tied and rescaled.
  config.update(tie_word_embeddings=True, feed_forward_proj="relu")
  assert hf_import.config_from_hf(config).logits_via_embedding


def test_torch_bin_reader_rebuilds_views_dtypes_and_shared_storage(goldens):
  got = hf_import.read_torch_state_dict(str(GOLDENS / "tensors.bin"))
  expected = {k[len("tensors."):]: v for k, v in goldens.items()
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


def test_a_bin_that_needs_torch_is_one_line_naming_the_extra(tmp_path):
  """A legacy (torch < 1.6) pytorch_model.bin is the one .bin read only with
  torch: one `error:` line (a UserError, exit 2 in train.main) that names
  the parity extra and the safetensors file, not a traceback."""
  (tmp_path / "config.json").write_text(
      (GOLDENS / "t5_1_0_bin" / "config.json").read_text())
  (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"w": [1.0]}))
  with pytest.raises(hf_import.CheckpointFileError) as info:
    hf_import.load_pretrained(str(tmp_path))
  assert isinstance(info.value, errors.UserError)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith(str(tmp_path / "pytorch_model.bin"))
  assert 'pip install -e ".[parity]"' in message
  assert "model.safetensors" in message


def test_torch_is_kept_out_of_this_process():
  """tests/conftest.py refuses torch here (TensorFlow is loaded)."""
  assert "tensorflow" in sys.modules
  for name in ("torch", "triton", "transformers"):
    with pytest.raises(ModuleNotFoundError, match="make_hf_goldens.py"):
      importlib.import_module(name)
    assert name not in sys.modules
