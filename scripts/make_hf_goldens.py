r"""Writes the Hugging Face T5 parity goldens (tests/testdata/hf_parity/).

  pip install -e ".[parity]"      # torch, transformers, safetensors
  python scripts/make_hf_goldens.py [--out tests/testdata/hf_parity]

Builds small random `T5ForConditionalGeneration` models with transformers'
PyTorch T5, the reference implementation, and writes what the default test
suite (tests/train/hf_parity_test.py) needs to check our Flax T5 and
checkpoint import without torch:

  <name>/config.json, model.safetensors   save_pretrained, one per CONFIGS
  t5_1_0_bin/pytorch_model.bin            torch.save of t5_1_0's state dict
  t5_1_1_v4/pytorch_model.bin             t5_1_1's state dict plus a separate
                                          lm_head.weight, as transformers 4
                                          saved T5 1.1 (config.json too)
  tensors.bin                             torch.save of views, offsets,
                                          shared storage and dtypes
  goldens.npz                             the inputs, and per model
                                          <name>.logits, <name>.generated;
                                          t5_1_1_v4.lm_head; tensors.<key>
  versions.json                           torch and transformers versions

The inputs exercise encoder padding, decoder padding (HF has no decoder
padding mask, so only real target tokens are compared), and distances past
`relative_attention_max_distance` (the log-spaced buckets). Weights are
redrawn N(0, 0.5) so that every path moves the logits.

The test `test_installed_transformers_agrees` runs this script into a
temporary folder when torch and transformers are installed (the live
comparison). torch never shares a process with TensorFlow (importing
triton, which CUDA builds of torch bring, next to TensorFlow segfaults):
TensorFlow is made unimportable here before transformers is imported.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "testdata" / "hf_parity"
DECODE_LENGTH = 12
VOCAB_SIZE = 40
_COMMON = dict(vocab_size=VOCAB_SIZE, dropout_rate=0.0,
               decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
# Unequal stacks (2 encoder, 3 decoder layers) check the stacks are mapped
# apart; max_distance 20 under inputs of 30 reaches the log-spaced buckets.
CONFIGS = {
    "t5_1_0": dict(  # ReLU, tied embeddings, logits rescaled by d_model**-.5
        d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3,
        num_heads=4, relative_attention_num_buckets=8,
        relative_attention_max_distance=20, feed_forward_proj="relu",
        tie_word_embeddings=True, **_COMMON),
    "t5_1_1": dict(  # gated-GELU, separate output projection
        d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3,
        num_heads=4, relative_attention_num_buckets=8,
        relative_attention_max_distance=20, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, **_COMMON),
    "t5_1_1_buckets": dict(  # HF's default 32 buckets / 128, gated-ReLU
        d_model=16, d_kv=8, d_ff=24, num_layers=1, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=32,
        relative_attention_max_distance=128, feed_forward_proj="gated-relu",
        tie_word_embeddings=False, **_COMMON),
}


def inputs(seed: int = 0) -> dict[str, np.ndarray]:
  """The batch every model runs on (padding in both stacks)."""
  rng = np.random.RandomState(seed)
  enc = rng.randint(2, VOCAB_SIZE, (3, 30)).astype(np.int32)
  enc[0, 22:] = 0
  enc[1, 9:] = 0
  targets = rng.randint(2, VOCAB_SIZE, (3, 25)).astype(np.int32)
  targets[2, 12:] = 0
  gen = np.random.RandomState(seed + 1).randint(
      2, VOCAB_SIZE, (3, 30)).astype(np.int32)
  gen[1, 14:] = 0
  return {
      "encoder_input_tokens": enc,
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": targets,
      "generate_input_tokens": gen,
  }


def _model(config: dict, seed: int):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(seed)
  model = transformers.T5ForConditionalGeneration(
      transformers.T5Config(**config)).eval()
  with torch.no_grad():  # default init is tiny for some weights
    for p in model.parameters():
      p.normal_(0.0, 0.5)
  return model


def _run(model, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
  """(logits, greedy tokens without the start token) of one model."""
  import torch  # pylint: disable=g-import-not-at-top

  enc = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
  gen = torch.tensor(batch["generate_input_tokens"], dtype=torch.long)
  with torch.no_grad():
    # HF's KV cache mis-sizes models with unequal stacks: use_cache off.
    logits = model(
        input_ids=enc, attention_mask=(enc > 0).long(),
        decoder_input_ids=torch.tensor(batch["decoder_input_tokens"],
                                       dtype=torch.long),
        use_cache=False).logits.numpy()
    generated = model.generate(
        input_ids=gen, attention_mask=(gen > 0).long(), do_sample=False,
        num_beams=1, max_new_tokens=DECODE_LENGTH, min_new_tokens=0,
        use_cache=False).numpy()
  generated = generated[:, 1:]
  generated = np.pad(generated,
                     ((0, 0), (0, DECODE_LENGTH - generated.shape[1])))
  return logits.astype(np.float32), generated.astype(np.int32)


def _save_tensors(path: str) -> dict[str, np.ndarray]:
  """torch.save's corner cases: strides, offsets, shared storage, dtypes."""
  import torch  # pylint: disable=g-import-not-at-top

  base = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
  tensors = {
      "plain": base,
      "transposed": base.t(),  # strides (1, 5)
      "slice": base[2:, 1:4],  # storage offset 11, shared with "plain"
      "bfloat16": base.to(torch.bfloat16),
      "float16": base.half(),
      "float64": base.double(),
      "int64": torch.arange(7),
      "scalar": torch.tensor(3.5),
      "parameter": torch.nn.Parameter(base[0].clone()),
  }
  torch.save(tensors, path)
  return {f"tensors.{k}": (v.detach().numpy() if k == "int64" else
                           v.detach().float().numpy())
          for k, v in tensors.items()}


def write_goldens(out: pathlib.Path) -> None:
  """Writes every file listed in the module docstring into `out`."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  out.mkdir(parents=True, exist_ok=True)
  batch = inputs()
  arrays = dict(batch)
  for seed, (name, config) in enumerate(sorted(CONFIGS.items())):
    model = _model(config, seed)
    if (out / name).exists():
      shutil.rmtree(out / name)
    model.save_pretrained(str(out / name))
    arrays[f"{name}.logits"], arrays[f"{name}.generated"] = _run(model, batch)
    state = model.state_dict()
    if name == "t5_1_0":
      (out / "t5_1_0_bin").mkdir(exist_ok=True)
      shutil.copy(out / name / "config.json", out / "t5_1_0_bin")
      torch.save(state, out / "t5_1_0_bin" / "pytorch_model.bin")
    if name == "t5_1_1":
      # transformers 4 wrote no scale_decoder_outputs and its own lm_head.
      hf = json.loads((out / name / "config.json").read_text())
      hf.pop("scale_decoder_outputs", None)
      hf["tie_word_embeddings"] = False
      (out / "t5_1_1_v4").mkdir(exist_ok=True)
      (out / "t5_1_1_v4" / "config.json").write_text(
          json.dumps(hf, indent=2, sort_keys=True) + "\n")
      lm_head = torch.randn_like(state["shared.weight"])
      torch.save(dict(state, **{"lm_head.weight": lm_head}),
                 out / "t5_1_1_v4" / "pytorch_model.bin")
      arrays["t5_1_1_v4.lm_head"] = lm_head.numpy()
  arrays.update(_save_tensors(str(out / "tensors.bin")))
  np.savez_compressed(out / "goldens.npz", **arrays)
  (out / "versions.json").write_text(json.dumps(
      {"torch": torch.__version__, "transformers": transformers.__version__,
       "script": "scripts/make_hf_goldens.py"}, indent=2) + "\n")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=str(DEFAULT_OUT),
                      help="output folder (default: %(default)s)")
  args = parser.parse_args(argv)
  # TensorFlow must never share this process with torch/triton: make it
  # unimportable (libraries that probe for it see it as not installed).
  for name in ("tensorflow", "tensorflow_text", "tensorflow_datasets"):
    sys.modules[name] = None
  os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    import transformers  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise SystemExit(f"error: {e.name} is not installed; the goldens need "
                     "the parity extra: pip install -e \".[parity]\"") from e
  write_goldens(pathlib.Path(args.out))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
