"""Imports Hugging Face T5 checkpoints (T5 1.0 and 1.1) into our params.

`load_pretrained(path)` reads a directory written by
`T5ForConditionalGeneration.save_pretrained` (config.json + model.safetensors,
sharded safetensors with an index, or pytorch_model.bin) or a single weights
file with config.json beside it; public checkpoints such as `t5-base` or
`google/t5-v1_1-base` downloaded with `huggingface-cli download` work as they
are. Both formats are read with numpy alone: safetensors with its numpy API,
`.bin` state dicts (torch.save's zip format) with a restricted unpickler that
rebuilds tensors and nothing else. torch is never imported (the default
install has none; it comes with the `parity` extra), so importing a
checkpoint is safe in a process that holds TensorFlow (torch's triton
segfaults there) and cannot run code from the pickle. The reader is checked
against files torch itself wrote (tests/testdata/hf_parity/, by
scripts/make_hf_goldens.py).

Name map (PyTorch Linear weights are [out, in]; ours are [in, out]):

  shared.weight                                   token_embedder/embedding
  {enc,dec}.block.0.layer.0.SelfAttention.relative_attention_bias.weight
                                                  {..}/relpos_bias/rel_embedding (T)
  encoder.block.i.layer.0.SelfAttention.{q,k,v,o} encoder/layers_i/attention/..
  encoder.block.i.layer.0.layer_norm              ../pre_attention_layer_norm
  encoder.block.i.layer.1.DenseReluDense.{wi,wi_0,wi_1,wo}   ../mlp/..
  encoder.block.i.layer.1.layer_norm              ../pre_mlp_layer_norm
  decoder.block.i.layer.0 / .1 (EncDecAttention) / .2 (MLP), same pattern
  {encoder,decoder}.final_layer_norm              {encoder_norm,decoder_norm}
  lm_head.weight                                  decoder/logits_dense (untied)
"""

import collections
import glob
import json
import os
import pickle
import zipfile
from typing import Any, Mapping

import ml_dtypes

import numpy as np

from crs_runtime import errors
from train import network

PyTree = Any


class CheckpointFileError(errors.UserError, ValueError):
  """A weights file this reader cannot read: one `error:` line in a command
  (train.main), still a ValueError for callers."""


_ACTIVATIONS = {
    "relu": ("relu",),
    "gelu": ("gelu_exact",),
    "gated-gelu": ("gelu", "linear"),
    "gated-relu": ("relu", "linear"),
    "gated-silu": ("silu", "linear"),
}


def config_from_hf(hf: Mapping[str, Any]) -> network.T5Config:
  """A Hugging Face T5 config (dict from config.json) -> `T5Config`."""
  proj = hf.get("feed_forward_proj", "relu")
  if proj not in _ACTIVATIONS:
    raise ValueError(f"unsupported feed_forward_proj {proj!r}; known: "
                     f"{sorted(_ACTIVATIONS)}")
  if abs(hf.get("layer_norm_epsilon", 1e-6) - 1e-6) > 1e-12:
    raise ValueError("only layer_norm_epsilon=1e-6 is supported, got "
                     f"{hf['layer_norm_epsilon']}")
  return network.T5Config(
      vocab_size=hf["vocab_size"],
      emb_dim=hf["d_model"],
      num_heads=hf["num_heads"],
      num_encoder_layers=hf["num_layers"],
      num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
      head_dim=hf["d_kv"],
      mlp_dim=hf["d_ff"],
      mlp_activations=_ACTIVATIONS[proj],
      dropout_rate=hf.get("dropout_rate", 0.1),
      logits_via_embedding=_logits_via_embedding(hf),
      relative_attention_num_buckets=hf.get("relative_attention_num_buckets",
                                            32),
      relative_attention_max_distance=hf.get(
          "relative_attention_max_distance", 128),
  )


def _logits_via_embedding(hf: Mapping[str, Any]) -> bool:
  """T5 1.0 (tied, rescaled logits) or 1.1 (separate, unscaled logits).

  transformers < 5 writes `tie_word_embeddings: false` for T5 1.1;
  transformers >= 5 always ties `lm_head` to the embedding and records the
  variant as `scale_decoder_outputs` (True for 1.0).
  """
  if "scale_decoder_outputs" in hf:
    return bool(hf["scale_decoder_outputs"])
  return bool(hf.get("tie_word_embeddings", True))


def convert_state_dict(state: Mapping[str, np.ndarray],
                       config: network.T5Config) -> PyTree:
  """PyTorch T5 state dict (numpy arrays) -> our nested params (float32).

  Raises:
    KeyError: a tensor the config needs is missing (its name is given).
    ValueError: a tensor has an unexpected shape.
  """
  def get(name):
    if name not in state:
      raise KeyError(f"checkpoint has no tensor {name!r}")
    return np.asarray(state[name], np.float32)

  h, d, e = config.num_heads, config.head_dim, config.emb_dim

  def attention(prefix):
    q, k, v, o = (get(f"{prefix}.{n}.weight") for n in "qkvo")
    return {
        "query": {"kernel": q.T.reshape(e, h, d)},
        "key": {"kernel": k.T.reshape(e, h, d)},
        "value": {"kernel": v.T.reshape(e, h, d)},
        "out": {"kernel": o.T},
    }

  def mlp(prefix):
    names = (["wi"] if len(config.mlp_activations) == 1 else
             [f"wi_{i}" for i in range(len(config.mlp_activations))])
    out = {n: {"kernel": get(f"{prefix}.DenseReluDense.{n}.weight").T}
           for n in names}
    out["wo"] = {"kernel": get(f"{prefix}.DenseReluDense.wo.weight").T}
    return out

  def norm(name):
    return {"scale": get(name)}

  shared = state.get("shared.weight")
  if shared is None:
    shared = state.get("encoder.embed_tokens.weight")
  if shared is None:
    raise KeyError("checkpoint has no tensor 'shared.weight'")
  params = {"token_embedder": {"embedding": np.asarray(shared, np.float32)}}
  enc = {"relpos_bias": {"rel_embedding": get(
      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
  ).T}}
  for i in range(config.num_encoder_layers):
    p = f"encoder.block.{i}.layer"
    enc[f"layers_{i}"] = {
        "pre_attention_layer_norm": norm(f"{p}.0.layer_norm.weight"),
        "attention": attention(f"{p}.0.SelfAttention"),
        "pre_mlp_layer_norm": norm(f"{p}.1.layer_norm.weight"),
        "mlp": mlp(f"{p}.1"),
    }
  enc["encoder_norm"] = norm("encoder.final_layer_norm.weight")
  dec = {"relpos_bias": {"rel_embedding": get(
      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
  ).T}}
  for i in range(config.num_decoder_layers):
    p = f"decoder.block.{i}.layer"
    dec[f"layers_{i}"] = {
        "pre_self_attention_layer_norm": norm(f"{p}.0.layer_norm.weight"),
        "self_attention": attention(f"{p}.0.SelfAttention"),
        "pre_cross_attention_layer_norm": norm(f"{p}.1.layer_norm.weight"),
        "encoder_decoder_attention": attention(f"{p}.1.EncDecAttention"),
        "pre_mlp_layer_norm": norm(f"{p}.2.layer_norm.weight"),
        "mlp": mlp(f"{p}.2"),
    }
  dec["decoder_norm"] = norm("decoder.final_layer_norm.weight")
  if not config.logits_via_embedding:
    # Checkpoints from transformers >= 5 omit lm_head: it is the embedding.
    lm_head = state.get("lm_head.weight", shared)
    dec["logits_dense"] = {"kernel": np.asarray(lm_head, np.float32).T}
  params["encoder"], params["decoder"] = enc, dec
  if params["token_embedder"]["embedding"].shape != (config.vocab_size, e):
    raise ValueError(
        f"embedding shape {params['token_embedder']['embedding'].shape} does "
        f"not match vocab_size={config.vocab_size}, emb_dim={e}")
  return params


def _read_weights(path: str) -> dict[str, np.ndarray]:
  if path.endswith(".safetensors"):
    try:
      from safetensors import numpy as st_numpy  # pylint: disable=g-import-not-at-top
    except ImportError as e:  # an install older than this requirement
      raise ImportError(f"{path}: reading safetensors needs the safetensors "
                        "package (no torch): pip install -e .") from e
    return dict(st_numpy.load_file(path))
  return {k: np.asarray(v, np.float32)
          for k, v in read_torch_state_dict(path).items()}


# torch.<Name>Storage, as torch.save pickles a tensor's storage type.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32,
    "HalfStorage": np.float16, "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


def _rebuild_tensor(storage, offset, size, stride, *unused_args):
  """torch._utils._rebuild_tensor_v2 on a numpy storage (strides in items)."""
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size),
      strides=tuple(s * item for s in stride))
  return np.array(view)  # own the memory; drop the strides


def _rebuild_parameter(data, *unused_args):
  return data


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a `torch.save`d state dict (zip format, torch >= 1.6) with numpy.

  Only tensors, their storages and (ordered) dicts are rebuilt; any other
  object in the pickle is refused, like `torch.load(weights_only=True)`.

  Args:
    path: a `pytorch_model.bin` (or any torch.save'd dict of tensors).

  Returns:
    Mapping of parameter name to numpy array (bf16 as ml_dtypes.bfloat16).

  Raises:
    ValueError: not a zip-format torch file, or it holds other objects.
  """
  if not zipfile.is_zipfile(path):
    directory = os.path.dirname(path) or "."
    raise CheckpointFileError(
        "not a zip-format torch.save file (a legacy torch < 1.6 pickle, "
        "which is read only with torch)",
        where=path,
        fix="use the checkpoint's model.safetensors instead, or install "
        "torch with `pip install -e \".[parity]\"` and rewrite it as "
        "safetensors: python -c \"import transformers as t; "
        f"t.T5ForConditionalGeneration.from_pretrained('{directory}')"
        f".save_pretrained('{directory}')\"")
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path}: expected one data.pkl, found {pickles}")
    prefix = pickles[0][:-len("data.pkl")]
    names = set(archive.namelist())
    if prefix + "byteorder" in names and archive.read(
        prefix + "byteorder").strip() != b"little":
      raise ValueError(f"{path}: big-endian tensors are not supported")
    storages = {}

    class Unpickler(pickle.Unpickler):

      def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
          return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
          return _rebuild_parameter
        if module == "collections" and name == "OrderedDict":
          return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
          return np.dtype(_STORAGE_DTYPES[name])
        raise CheckpointFileError(
            f"refusing to unpickle {module}.{name} (only tensors are read)",
            where=path)

      def persistent_load(self, pid):
        kind, dtype, key, unused_location, numel = pid
        if kind != "storage" or not isinstance(dtype, np.dtype):
          raise ValueError(f"{path}: unexpected persistent id {pid!r}")
        if key not in storages:
          raw = archive.read(f"{prefix}data/{key}")
          storages[key] = np.frombuffer(raw, dtype, count=numel)
        return storages[key]

    with archive.open(pickles[0]) as f:
      state = Unpickler(f).load()
  if not isinstance(state, dict):
    raise ValueError(f"{path}: expected a state dict, got {type(state)}")
  return dict(state)


def _weight_files(directory: str) -> list[str]:
  for pattern in ("model.safetensors", "model-*-of-*.safetensors",
                  "pytorch_model.bin", "pytorch_model-*-of-*.bin"):
    files = sorted(glob.glob(os.path.join(directory, pattern)))
    if files:
      return files
  raise FileNotFoundError(
      f"{directory}: no model.safetensors or pytorch_model.bin (sharded or "
      "not); expected a T5ForConditionalGeneration.save_pretrained directory")


def load_pretrained(path: str) -> tuple[network.T5Config, PyTree]:
  """Reads a Hugging Face T5 checkpoint.

  Args:
    path: a save_pretrained directory, or a weights file
      (.safetensors/.bin) with config.json in the same directory.

  Returns:
    `(config, params)`: the model config (dropout from the checkpoint) and
    float32 numpy params in our tree layout.
  """
  directory = path if os.path.isdir(path) else os.path.dirname(path)
  config_path = os.path.join(directory, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{config_path} not found: a Hugging Face T5 "
                            "checkpoint needs its config.json")
  with open(config_path) as f:
    config = config_from_hf(json.load(f))
  files = _weight_files(path) if os.path.isdir(path) else [path]
  state = {}
  for name in files:
    state.update(_read_weights(name))
  return config, convert_state_dict(state, config)
