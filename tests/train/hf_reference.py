r"""The Hugging Face (PyTorch) side of the parity tests, in its own process.

torch brings triton, and importing triton into a process that already holds
TensorFlow segfaults (torch 2.14.1 + triton 3.8 + TensorFlow 2.21:
`python -c "import tensorflow, triton"` dies; the other order works). The
pytest process always holds TensorFlow (seqio), so the tests never import
torch or transformers: they describe the reference models in a request,
this script builds them in a fresh interpreter where TensorFlow is made
unimportable, and the results come back as arrays in an .npz file. The
isolation does not depend on any torch, triton or TensorFlow release.

  python tests/train/hf_reference.py REQUEST.npz RESULT.npz

REQUEST.npz holds `spec`, a JSON string, and the input arrays it names:

  {"models": {NAME: {
      "config": {...},            # transformers.T5Config keyword arguments
      "seed": 0,                  # torch.manual_seed before building
      "normal_std": 0.5,          # optional: redraw every weight N(0, std)
      "save_pretrained": DIR,     # optional: save_pretrained (safetensors)
      "save_bin": PATH,           # optional: torch.save(state_dict)
      "save_bin_with_lm_head": PATH,  # optional: state_dict + a random
                                  #   lm_head.weight (as transformers 4 did)
      "logits": true,             # optional: logits on NAME.encoder_input_
                                  #   tokens / NAME.decoder_input_tokens
      "generate_length": 12}},    # optional: greedy generate() on
                                  #   NAME.generate_input_tokens
   "tensors": PATH}               # optional: torch.save a dict of views,
                                  #   dtypes and shared storages (TENSORS)

RESULT.npz holds NAME.logits, NAME.generated (start token dropped),
NAME.lm_head and tensors.KEY (float32 or int64 values), as asked.

The tests reach it through `run_reference` (the `hf_reference` fixture in
tests/train/conftest.py), which needs neither torch nor transformers.
"""

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = os.path.abspath(__file__)


def run_reference(workdir, spec, arrays=None, timeout=600):
  """Runs this script in a fresh interpreter; returns its result arrays.

  Args:
    workdir: a directory for the request and result files.
    spec: the request (see the module docstring).
    arrays: input arrays named in the spec (`NAME.encoder_input_tokens`, ...).
    timeout: seconds before the reference process is killed.

  Returns:
    Mapping of result name to numpy array.

  Raises:
    RuntimeError: the reference process failed; its stderr tail is included.
  """
  os.makedirs(workdir, exist_ok=True)
  request = os.path.join(workdir, "hf_request.npz")
  result = os.path.join(workdir, "hf_result.npz")
  np.savez(request, spec=np.asarray(json.dumps(spec)), **(arrays or {}))
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")
  proc = subprocess.run([sys.executable, SCRIPT, request, result],
                        capture_output=True, text=True, env=env,
                        timeout=timeout, check=False)
  if proc.returncode != 0:
    raise RuntimeError(
        f"hf_reference.py exited {proc.returncode}:\n{proc.stderr[-4000:]}")
  with np.load(result) as data:
    return {k: data[k] for k in data.files}


def _build(name, model_spec, inputs):
  """Builds, saves and runs one reference model; returns its result arrays."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(model_spec.get("seed", 0))
  config = transformers.T5Config(**model_spec["config"])
  model = transformers.T5ForConditionalGeneration(config).eval()
  if model_spec.get("normal_std") is not None:
    # Random init is tiny for some weights; widen it so every path matters.
    with torch.no_grad():
      for p in model.parameters():
        p.normal_(0.0, model_spec["normal_std"])
  out = {}
  if model_spec.get("save_pretrained"):
    model.save_pretrained(model_spec["save_pretrained"])
  if model_spec.get("save_bin"):
    torch.save(model.state_dict(), model_spec["save_bin"])
  if model_spec.get("save_bin_with_lm_head"):
    state = model.state_dict()
    lm_head = torch.randn_like(state["shared.weight"])
    torch.save(dict(state, **{"lm_head.weight": lm_head}),
               model_spec["save_bin_with_lm_head"])
    out[f"{name}.lm_head"] = lm_head.numpy()
  if model_spec.get("logits"):
    enc = torch.tensor(inputs[f"{name}.encoder_input_tokens"],
                       dtype=torch.long)
    with torch.no_grad():
      # HF's KV cache mis-sizes models with unequal stacks: use_cache off.
      out[f"{name}.logits"] = model(
          input_ids=enc, attention_mask=(enc > 0).long(),
          decoder_input_ids=torch.tensor(
              inputs[f"{name}.decoder_input_tokens"], dtype=torch.long),
          use_cache=False).logits.numpy()
  if model_spec.get("generate_length"):
    enc = torch.tensor(inputs[f"{name}.generate_input_tokens"],
                       dtype=torch.long)
    with torch.no_grad():
      generated = model.generate(
          input_ids=enc, attention_mask=(enc > 0).long(), do_sample=False,
          num_beams=1, max_new_tokens=model_spec["generate_length"],
          min_new_tokens=0, use_cache=False).numpy()
    out[f"{name}.generated"] = generated[:, 1:]  # drop the start token
  return out


def _save_tensors(path):
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


def main(argv):
  if len(argv) != 3:
    raise SystemExit(f"usage: {argv[0]} REQUEST.npz RESULT.npz")
  # TensorFlow must never share this process with torch/triton: make it
  # unimportable (libraries that probe for it see it as not installed).
  for name in ("tensorflow", "tensorflow_text", "tensorflow_datasets"):
    sys.modules[name] = None
  with np.load(argv[1]) as data:
    inputs = {k: data[k] for k in data.files}
  spec = json.loads(str(inputs.pop("spec")))
  out = {}
  for name, model_spec in spec.get("models", {}).items():
    out.update(_build(name, model_spec, inputs))
  if spec.get("tensors"):
    out.update(_save_tensors(spec["tensors"]))
  np.savez(argv[2], **out)


if __name__ == "__main__":
  main(sys.argv)
