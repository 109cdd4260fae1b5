r"""Training throughput: our JAX trainer vs Hugging Face PyTorch T5, on CPU.

Both sides train the same T5 1.1-style config (gated-GELU) of the same size
on the same random batches of full-length sequences with AdamW, each in its
own subprocess so peak memory (ru_maxrss) is measured separately:

  python bench/train_throughput.py                 # default "mini" config
  python bench/train_throughput.py --config=small --steps=5
  python bench/train_throughput.py --rounds=3      # alternate, take medians
  python bench/train_throughput.py --hf_compiled   # HF under torch.compile

Same model: transformers >= 5 always ties T5's `lm_head` to the embedding,
so the HF side is built tied and *rescaled* (`tie_word_embeddings=True`:
decoder outputs times d_model**-0.5 before the tied projection, as T5 1.0
and our `logits_via_embedding` do; with `tie_word_embeddings=False`
transformers 5 ties without the rescale and starts at logits of standard
deviation ~16, so its loss ended 20 steps at 42 where ours was at 11). The
HF run goes first and ours ties its output projection exactly when HF's is
tied; both print their parameter counts and final losses, which agree.
`--separate_logits` keeps T5 1.1's separate output projection on our side
anyway (ours then has vocab x emb more parameters to update).

The HF side needs the parity extra (`pip install -e ".[parity]"`: torch,
transformers); it runs in its own process, with TensorFlow kept out.

Prints tokens/s (input + target tokens per second) of both, their ratio
(ours / HF, goal >= 1.0) and peak resident memory. Ours is
`trainer.compile_steps`' jit-compiled train step on a 1x1 mesh, i.e. the
step `train.main` runs; compile time is reported apart and excluded. With
`--rounds=N` the two sides alternate N times (the machine's load drifts) and
the medians are reported.

Both sides run under the same allocator: tcmalloc where the machine has it
(our commands' default, crs_runtime/allocator.py: glibc would fault every
step's temporaries back in), the system one with `CRS_MALLOC=system`. The
header says which.
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from crs_runtime import allocator  # pylint: disable=g-import-not-at-top,wrong-import-position

# Hugging Face sides, each in its own process: eager float32, eager bf16
# autocast, and both under torch.compile with fused AdamW.
TORCH_SIDES = ("torch", "torch_bf16", "torch_compiled",
               "torch_bf16_compiled")

CONFIGS = {
    # name: (emb, heads, head_dim, mlp, layers, vocab, batch, in_len, tgt_len)
    "tiny": (64, 2, 32, 128, 2, 32128, 8, 64, 16),
    "mini": (256, 4, 64, 1024, 4, 32128, 16, 128, 32),
    "small": (512, 6, 64, 1024, 8, 32128, 16, 256, 64),
    # The study's model (gin/models/t5_1_1_tiny.gin) and batch.
    "study_tiny": (128, 4, 32, 256, 2, 32128, 16, 128, 32),
}


def _batch_arrays(cfg, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top

  _, _, _, _, _, vocab, batch, in_len, tgt_len = cfg
  rng = np.random.RandomState(seed)
  targets = rng.randint(3, vocab, size=(batch, tgt_len)).astype(np.int32)
  return {
      "encoder_input_tokens": rng.randint(
          3, vocab, size=(batch, in_len)).astype(np.int32),
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": targets,
      "decoder_loss_weights": np.ones((batch, tgt_len), np.float32),
  }


def _candidate_arrays(cfg, num_candidates):
  """int32 [num_candidates, 8] replies for the ranking benches: random
  tokens, EOS (1) last; the same on every side."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.RandomState(7)
  candidates = rng.randint(3, cfg[5], (num_candidates, 8)).astype(np.int32)
  candidates[:, -1] = 1
  return candidates


def run_jax(cfg, steps, warmup, tied, matmul_dtype=None):
  """Times our compiled train step (`matmul_dtype` 'bfloat16': mixed
  precision); returns a result dict."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  import seqio.test_utils  # pylint: disable=g-import-not-at-top

  from train import models  # pylint: disable=g-import-not-at-top
  from train import network  # pylint: disable=g-import-not-at-top
  from train import partitioning  # pylint: disable=g-import-not-at-top
  from train import trainer  # pylint: disable=g-import-not-at-top

  emb, heads, head_dim, mlp, layers, vocab, batch, in_len, tgt_len = cfg
  config = network.T5Config(
      vocab_size=vocab, emb_dim=emb, num_heads=heads, head_dim=head_dim,
      mlp_dim=mlp, num_encoder_layers=layers, num_decoder_layers=layers,
      mlp_activations=("gelu", "linear"), dropout_rate=0.0,
      logits_via_embedding=tied, matmul_dtype=matmul_dtype)
  vocabulary = seqio.test_utils.sentencepiece_vocab()
  model = models.EncoderDecoderModel(
      network.Transformer(config), vocabulary, vocabulary,
      z_loss=0.0, label_smoothing=0.0)
  mesh = partitioning.make_mesh(mesh_shape=(1, 1))
  opt = optax.adamw(1e-3)
  state, shardings = trainer.create_train_state(
      model, opt, mesh=mesh, init_rng=jax.random.PRNGKey(0),
      input_shapes={"encoder_input_tokens": (batch, in_len),
                    "decoder_input_tokens": (batch, tgt_len)})
  step, _ = trainer.compile_steps(model, opt, mesh=mesh,
                                  state_shardings=shardings)
  data = partitioning.batch_sharding(mesh)
  batches = [jax.device_put(_batch_arrays(cfg, i), data)
             for i in range(steps + warmup)]
  rng = jax.random.PRNGKey(1)
  start = time.perf_counter()
  state, metrics = step(state, batches[0], rng)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  for b in batches[1:warmup]:
    state, metrics = step(state, b, rng)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for b in batches[warmup:]:
    state, metrics = step(state, b, rng)
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - start
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  return dict(seconds=seconds, compile_seconds=compile_s, params=n_params,
              loss=float(metrics["loss"]) / (batch * tgt_len), tied=tied)


def run_torch(cfg, steps, warmup, tied, autocast=False, compiled=False,
              candidates=0):
  """Times HF T5ForConditionalGeneration with torch.optim.AdamW; with
  `autocast`, the forward pass under PyTorch's own mixed precision on CPU
  (`torch.autocast("cpu", dtype=torch.bfloat16)`: bf16 matmuls, float32
  parameters and optimizer). With `compiled`, PyTorch's fastest CPU
  setting we found: the model under `torch.compile` (inductor; it needs a
  C++ compiler) and AdamW's fused kernel (`fused=True`); the warm-up steps
  compile, and their time is reported as compile time. With `candidates`,
  the trained model then also decodes and ranks (`_torch_inference`)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  del tied  # transformers decides; reported below
  emb, heads, head_dim, mlp, layers, vocab, _, _, _ = cfg
  torch.manual_seed(0)
  hf_config = transformers.T5Config(
      vocab_size=vocab, d_model=emb, d_kv=head_dim, d_ff=mlp,
      num_layers=layers, num_decoder_layers=layers, num_heads=heads,
      feed_forward_proj="gated-gelu", tie_word_embeddings=True,
      dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0)
  # transformers >= 5 records the rescale as scale_decoder_outputs.
  rescaled = getattr(hf_config, "scale_decoder_outputs", True)
  model = transformers.T5ForConditionalGeneration(hf_config)
  model.train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4,
                          fused=compiled or None)
  forward = torch.compile(model) if compiled else model

  def to_torch(arrays):
    return dict(
        input_ids=torch.from_numpy(arrays["encoder_input_tokens"]).long(),
        decoder_input_ids=torch.from_numpy(
            arrays["decoder_input_tokens"]).long(),
        labels=torch.from_numpy(arrays["decoder_target_tokens"]).long())

  batches = [to_torch(_batch_arrays(cfg, i)) for i in range(steps + warmup)]

  def step(b):
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
      loss = forward(**b).loss
    loss.backward()
    opt.step()
    return loss

  start = time.perf_counter()
  for b in batches[:warmup]:
    step(b)
  warmup_seconds = time.perf_counter() - start
  start = time.perf_counter()
  for b in batches[warmup:]:
    loss = step(b)
  seconds = time.perf_counter() - start
  n_params = sum(p.numel() for p in model.parameters())
  inference = (_torch_inference(model, forward, cfg, autocast, candidates)
               if candidates else {})
  return dict(inference, seconds=seconds,
              compile_seconds=warmup_seconds if compiled else 0.0,
              params=n_params, loss=float(loss.detach()),
              torch_threads=torch.get_num_threads(),
              tied=model.lm_head.weight is model.shared.weight,
              rescaled=bool(rescaled), autocast=autocast, compiled=compiled)


def run_real_t5x(cfg, steps, warmup):
  """Times real t5x (not on PyPI: installed from its source, where a user
  has it) at its default precision for T5 1.1 (`ACTIVATION_DTYPE=
  'bfloat16'`, float32 parameters): its examples/t5 network (one-hot
  embedding lookups included) and `EncoderDecoderModel.loss_fn` (z-loss
  1e-4), tied logits, in a jitted `value_and_grad` step with optax AdamW,
  as t5x's trainer runs it (its default optimizer is Adafactor; AdamW
  here, like every side)."""
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  import optax
  import seqio.test_utils
  from t5x import adafactor
  from t5x import models as t5x_models
  from t5x.examples.t5 import network as t5x_network
  # pylint: enable=g-import-not-at-top

  emb, heads, head_dim, mlp, layers, vocab, batch, in_len, tgt_len = cfg
  config = t5x_network.T5Config(
      vocab_size=vocab, dtype=jnp.bfloat16, emb_dim=emb, num_heads=heads,
      num_encoder_layers=layers, num_decoder_layers=layers,
      head_dim=head_dim, mlp_dim=mlp, mlp_activations=("gelu", "linear"),
      dropout_rate=0.0, logits_via_embedding=True)
  vocabulary = seqio.test_utils.sentencepiece_vocab()
  model = t5x_models.EncoderDecoderModel(
      t5x_network.Transformer(config), vocabulary, vocabulary,
      adafactor.Adafactor(), z_loss=1e-4)
  batches = [{k: jnp.asarray(v) for k, v in _batch_arrays(cfg, i).items()}
             for i in range(steps + warmup)]
  params = model.get_initial_variables(
      jax.random.PRNGKey(0), {"encoder_input_tokens": (batch, in_len),
                              "decoder_input_tokens": (batch, tgt_len)})[
                                  "params"]
  opt = optax.adamw(1e-3)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, b):
    (loss, _), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(
        params, b, None)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  start = time.perf_counter()
  for b in batches[:warmup]:
    params, opt_state, loss = step(params, opt_state, b)
  jax.block_until_ready(loss)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for b in batches[warmup:]:
    params, opt_state, loss = step(params, opt_state, b)
  jax.block_until_ready(loss)
  seconds = time.perf_counter() - start
  n_params = sum(x.size for x in jax.tree.leaves(params))
  return dict(seconds=seconds, compile_seconds=compile_s, params=n_params,
              loss=float(loss) / (batch * tgt_len), tied=True)


def _torch_inference(model, forward, cfg, autocast, num_candidates):
  """Seconds (after one warm-up call each) to greedily decode one batch,
  exactly the target length (`min_new_tokens`: no early stop), with
  `generate` (eager: HF's generate loop is not compiled), and to rank
  `num_candidates` replies of 8 tokens against one context: the encoder
  once, then `forward` (compiled where the training was) over the
  candidates in chunks of 256, summing the log-softmax of each target
  token, as a Hugging Face user would. The same batch, context and
  candidates as bench/mixed_precision.py's `Side`."""
  import torch  # pylint: disable=g-import-not-at-top

  tgt_len = cfg[8]
  model.eval()
  encoder_tokens = torch.from_numpy(
      _batch_arrays(cfg, 0)["encoder_input_tokens"]).long()
  candidates = torch.from_numpy(
      _candidate_arrays(cfg, num_candidates)).long()

  def timed(fn):
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

  def decode():
    return model.generate(
        input_ids=encoder_tokens, max_new_tokens=tgt_len,
        min_new_tokens=tgt_len, do_sample=False, num_beams=1)

  def rank():
    context = encoder_tokens[:1]
    encoded = model.get_encoder()(input_ids=context).last_hidden_state
    scores = []
    for chunk in torch.split(candidates, 256):
      decoder_inputs = torch.nn.functional.pad(chunk[:, :-1], (1, 0))
      logits = forward(
          encoder_outputs=(encoded.expand(len(chunk), -1, -1),),
          decoder_input_ids=decoder_inputs).logits
      log_probs = torch.log_softmax(logits.float(), dim=-1)
      scores.append(log_probs.gather(-1, chunk[..., None])[..., 0].sum(-1))
    return torch.cat(scores)

  with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                       enabled=autocast):
    decode_seconds = timed(decode)
    rank_seconds = timed(rank)
  return dict(decode_seconds=decode_seconds, rank_seconds=rank_seconds)


def _child(args):
  if args.side in TORCH_SIDES:
    # triton (from torch) segfaults next to TensorFlow: keep TF out.
    sys.modules["tensorflow"] = None
  cfg = CONFIGS[args.config]
  if args.side == "jax":
    out = run_jax(cfg, args.steps, args.warmup, args.tied,
                  args.matmul_dtype)
  elif args.side == "real_t5x":
    out = run_real_t5x(cfg, args.steps, args.warmup)
  else:
    out = run_torch(cfg, args.steps, args.warmup, args.tied,
                    autocast=args.side.startswith("torch_bf16"),
                    compiled=args.side.endswith("_compiled"),
                    candidates=args.candidates)
  _, _, _, _, _, _, batch, in_len, tgt_len = cfg
  out["tokens_per_second"] = args.steps * batch * (in_len + tgt_len) / (
      out["seconds"])
  out["allocator"] = allocator.in_use()
  out["peak_rss_mib"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 1024
  print("RESULT" + json.dumps(out), flush=True)


def _spawn(side, args, tied=False, matmul_dtype=None, environ=None,
           candidates=0):
  """Runs one side in its own process (environment `environ`, default
  ours: the same allocator); returns its result dict. With `candidates`,
  a Hugging Face side also times decoding and ranking."""
  cmd = [sys.executable, os.path.abspath(__file__), f"--side={side}",
         f"--config={args.config}", f"--steps={args.steps}",
         f"--warmup={args.warmup}"] + (["--tied"] if tied else []) + (
             [f"--matmul_dtype={matmul_dtype}"] if matmul_dtype else []) + (
                 [f"--candidates={candidates}"] if candidates else [])
  env = dict(os.environ if environ is None else environ,
             CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")]
  if proc.returncode or not lines:
    raise RuntimeError(f"{side} benchmark failed:\n{proc.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT"):])


def _median_run(runs):
  """The run with the median tokens/s (the lower middle one if even)."""
  ordered = sorted(runs, key=lambda r: r["tokens_per_second"])
  return ordered[(len(ordered) - 1) // 2]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="mini", choices=sorted(CONFIGS))
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--rounds", type=int, default=1,
                      help="alternate the two sides this many times and "
                      "report the medians")
  parser.add_argument("--separate_logits", action="store_true",
                      help="ours keeps a separate output projection even "
                      "where HF's is tied")
  parser.add_argument("--hf_compiled", action="store_true",
                      help="the HF side under torch.compile with fused "
                      "AdamW (PyTorch's fastest CPU setting; needs a C++ "
                      "compiler) instead of eager")
  parser.add_argument("--side", choices=TORCH_SIDES + ("jax", "real_t5x"),
                      default=None,
                      help=argparse.SUPPRESS)
  parser.add_argument("--tied", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--candidates", type=int, default=0,
                      help=argparse.SUPPRESS)
  parser.add_argument("--matmul_dtype", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.side:
    _child(args)
    return
  # Both sides under tcmalloc where the machine has it (CRS_MALLOC=system:
  # the system allocator); crs_runtime/allocator.py says why.
  allocator.maybe_reexec()
  missing = [m for m in ("torch", "transformers")
             if importlib.util.find_spec(m) is None]
  if missing:
    sys.exit(f"error: the Hugging Face side needs {' and '.join(missing)}: "
             "pip install -e \".[parity]\"")
  emb, heads, head_dim, mlp, layers, vocab, batch, in_len, tgt_len = (
      CONFIGS[args.config])
  print(f"config {args.config}: emb {emb}, {heads}x{head_dim} heads, mlp "
        f"{mlp}, {layers}+{layers} layers, vocab {vocab}; batch {batch}, "
        f"lengths {in_len}/{tgt_len}; AdamW; {args.steps} timed steps; "
        f"{os.cpu_count()} CPUs; allocator {allocator.in_use()} (both "
        "sides)")
  hf_side = "torch_compiled" if args.hf_compiled else "torch"
  runs = {"jax": [], "torch": []}
  for i in range(args.rounds):
    runs["torch"].append(_spawn(hf_side, args))
    tied = runs["torch"][-1]["tied"] and not args.separate_logits
    runs["jax"].append(_spawn("jax", args, tied=tied))
    if args.rounds > 1:
      print(f"round {i + 1}/{args.rounds}: ours "
            f"{runs['jax'][-1]['tokens_per_second']:,.0f} tokens/s, HF "
            f"{runs['torch'][-1]['tokens_per_second']:,.0f} tokens/s",
            flush=True)
  results = {side: _median_run(r) for side, r in runs.items()}
  hf_name = "HF PyTorch T5" + (" (torch.compile, fused AdamW)"
                                if args.hf_compiled else " (eager)")
  names = (("jax", "ours (JAX/Flax)"), ("torch", hf_name))
  width = max(len(name) for _, name in names)
  for side, name in names:
    r = results[side]
    print(f"{name:{width}s} {r['tokens_per_second']:10,.0f} tokens/s  "
          f"{r['seconds'] / args.steps * 1000:8.1f} ms/step  peak RSS "
          f"{r['peak_rss_mib']:7,.0f} MiB  params {r['params']:,}  "
          f"compile {r['compile_seconds']:.1f}s  loss {r['loss']:.3f}")
  ratio = (results["jax"]["tokens_per_second"]
           / results["torch"]["tokens_per_second"])
  ours_head, hf_head = (("tied" if results[side]["tied"] else "separate")
                        for side in ("jax", "torch"))
  over = "" if args.rounds == 1 else f"; medians of {args.rounds} rounds"
  if results["torch"]["tied"] and not results["torch"]["rescaled"]:
    hf_head += " (not rescaled: losses are not comparable)"
  print(f"output projection: ours {ours_head}, HF {hf_head}; final loss "
        f"ours {results['jax']['loss']:.3f}, HF {results['torch']['loss']:.3f}"
        f"; throughput ratio ours/HF: {ratio:.2f}x (goal >= 1.0x{over})")
  print("RESULT" + json.dumps(dict(results, ratio=ratio)))


if __name__ == "__main__":
  main()
