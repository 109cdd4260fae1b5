r"""float32 vs mixed precision vs t5x's bf16 default, side by side.

In one process, in alternating rounds (the machine's load drifts), for the
same T5 1.1 config and the same random batches:

  python bench/mixed_precision.py                       # "mini", 3 rounds
  python bench/mixed_precision.py --config=study_tiny --rounds=5
  python bench/mixed_precision.py --hf                  # + Hugging Face
  python bench/mixed_precision.py --peak_only           # matmul peaks only

- three precisions: float32; mixed (`MATMUL_DTYPE='bfloat16'`: bf16
  operands, float32 accumulation, activations and result); and t5x's
  default for T5 1.1 (`ACTIVATION_DTYPE='bfloat16'`: bf16 operands and
  bf16 dot outputs, float32 parameters, norms and loss);
- the matmul peak of each precision: `jnp.dot` of two 2048 x 2048 float32
  matrices, of two bfloat16 ones into float32 (`preferred_element_type`),
  and of two bfloat16 ones into bfloat16 (t5x's);
- training (`trainer.compile_steps`' step, AdamW, 1x1 mesh): tokens/s, the
  step's GFLOP (XLA's cost analysis of the compiled step), GFLOP/s and its
  fraction of the peak of the precision used;
- greedy decoding (`predict_batch`, KV cache) of one batch, in seconds
  and generated tokens/s, and ranking (`score_candidates` of
  `--candidates` replies of 8 tokens against one context) in seconds per
  turn; each with its GFLOP (XLA's cost analysis: for decoding, of a
  teacher-forced forward pass over the same tokens, what a KV-cached
  decode computes; for ranking, of every compiled call
  `score_candidates` makes), GFLOP/s and fraction of the peak.

With `--hf` (and torch importable), bench/train_throughput.py's Hugging Face
PyTorch runs alternate with them, each in its own process: float32, and
PyTorch's own CPU mixed precision (`torch.autocast("cpu",
dtype=torch.bfloat16)`), each eager and under `torch.compile` with fused
AdamW (left out, with the reason, where inductor cannot compile). Each
HF run then also decodes the same batch greedily (`generate`, eager,
exactly the target length) and ranks the same candidates against the same
context (the encoder once, then the model over the candidates in chunks
of 256, compiled where its training was; no prefix sharing, as a Hugging
Face user would). The last line is ours (mixed) over the fastest HF
training, as medians and paired round by round. Prints each round, then
the medians.

Every side runs under the same allocator, tcmalloc where the machine has it
(our commands' default; crs_runtime/allocator.py), named in the header.
With `--system_malloc_reference`, each round also trains ours (mixed) and
Hugging Face (bf16 autocast, with `--hf`) in child processes under the
system allocator (`CRS_MALLOC=system`): the allocator's share of the speed. With
`--real_t5x` (where t5x is importable: it is not on PyPI), each round
also trains real t5x at its default precision in a child process: its
examples/t5 network and `EncoderDecoderModel.loss_fn`, AdamW. With
`--dots_alone`, each contraction shape of the mixed step is then timed
alone: the fraction of the bf16 peak that a step made of nothing but its
dots would reach, the ceiling for the step's own fraction; then AdamW's
update alone (memory-bound) and the cross-entropy alone, and the three
summed: the fastest the step can run with these kernels, beside the step
times the two goals need.
"""

import argparse
import collections
import functools
import importlib.util
import json
import os
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
from crs_runtime import allocator

if __name__ == "__main__":
  # Every side under tcmalloc where the machine has it (before JAX starts):
  # crs_runtime/allocator.py says why; CRS_MALLOC=system keeps glibc's.
  allocator.maybe_reexec()

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import seqio.test_utils

import train_throughput
from train import models
from train import network
from train import partitioning
from train import steps as steps_lib
from train import trainer

CONFIGS = train_throughput.CONFIGS
# pylint: disable=protected-access
_batch_arrays = train_throughput._batch_arrays
_candidate_arrays = train_throughput._candidate_arrays
_spawn = train_throughput._spawn
# pylint: enable=protected-access
# float32; mixed (bf16 operands, float32 accumulation and activations:
# MATMUL_DTYPE='bfloat16'); t5x's default for T5 1.1 (ACTIVATION_DTYPE=
# 'bfloat16': bf16 operands and bf16 dot outputs, float32 parameters).
POLICIES = ("float32", "bfloat16", "t5x")
NAMES = {"float32": "f32", "bfloat16": "mixed", "t5x": "t5x"}
DTYPES = {"float32": (jnp.float32, None), "bfloat16": (jnp.float32,
                                                        "bfloat16"),
          "t5x": (jnp.bfloat16, None)}  # policy: (dtype, matmul_dtype)
# bench/train_throughput.py's Hugging Face sides: float32 and PyTorch's own
# CPU mixed precision (bf16 autocast), eager and under torch.compile with
# fused AdamW (PyTorch's fastest CPU setting; it needs a C++ compiler, and
# without one the compiled columns are left out with the reason).
HF_SIDES = {"torch": "PyTorch float32",
            "torch_bf16": "PyTorch bf16 autocast",
            "torch_compiled": "PyTorch float32, torch.compile",
            "torch_bf16_compiled": "PyTorch bf16 autocast, torch.compile"}
PEAK_N = 2048


def _flops(lowered):
  """FLOPs of a lowered computation, by XLA's cost analysis."""
  cost = lowered.compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


def _timed(fn, reps, outputs=None):
  """Seconds per call of `fn` (a result to block on), after one call; the
  last result is appended to `outputs` when given."""
  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(reps):
    out = fn()
  jax.block_until_ready(out)
  seconds = (time.perf_counter() - start) / reps
  if outputs is not None:
    outputs.append(out)
  return seconds


class Peak:
  """GFLOP/s of a 2048^2 matmul in each precision."""

  def __init__(self):
    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (PEAK_N, PEAK_N), jnp.float32)
    b = jax.random.normal(jax.random.fold_in(key, 1), (PEAK_N, PEAK_N))
    bf16 = (a.astype(jnp.bfloat16), b.astype(jnp.bfloat16))
    self.args = {"float32": (a, b), "bfloat16": bf16, "t5x": bf16}
    to_f32 = jax.jit(lambda x, y: jnp.dot(
        x, y, preferred_element_type=jnp.float32))
    # t5x's bf16 mode: bf16 operands, bf16 result.
    self.fns = {"float32": to_f32, "bfloat16": to_f32,
                "t5x": jax.jit(jnp.dot)}

  def __call__(self, policy, reps=5):
    seconds = _timed(lambda: self.fns[policy](*self.args[policy]), reps)
    return 2 * PEAK_N ** 3 / seconds / 1e9


class Side:
  """One precision's compiled train step, decoder and candidate scorer."""

  def __init__(self, cfg, policy, tied, num_candidates):
    emb, heads, head_dim, mlp, layers, vocab, batch, in_len, tgt_len = cfg
    config = network.T5Config(
        vocab_size=vocab, emb_dim=emb, num_heads=heads, head_dim=head_dim,
        mlp_dim=mlp, num_encoder_layers=layers, num_decoder_layers=layers,
        mlp_activations=("gelu", "linear"), dropout_rate=0.0,
        logits_via_embedding=tied, dtype=DTYPES[policy][0],
        matmul_dtype=DTYPES[policy][1])
    vocabulary = seqio.test_utils.sentencepiece_vocab()
    self.model = models.EncoderDecoderModel(
        network.Transformer(config), vocabulary, vocabulary, z_loss=0.0)
    self.mesh = partitioning.make_mesh(mesh_shape=(1, 1))
    self.opt = optax.adamw(1e-3)
    self.state, shardings = trainer.create_train_state(
        self.model, self.opt, mesh=self.mesh,
        init_rng=jax.random.PRNGKey(0),
        input_shapes={"encoder_input_tokens": (batch, in_len),
                      "decoder_input_tokens": (batch, tgt_len)})
    self.step, _ = trainer.compile_steps(
        self.model, self.opt, mesh=self.mesh, state_shardings=shardings)
    data = partitioning.batch_sharding(self.mesh)
    self.batches = [jax.device_put(_batch_arrays(cfg, i), data)
                    for i in range(4)]
    self.rng = jax.random.PRNGKey(1)
    self.tokens_per_step = batch * (in_len + tgt_len)
    self.lowered = self._lower_step()
    self.flops = self._step_flops()
    self.candidates = _candidate_arrays(cfg, num_candidates)
    self.context = self.batches[0]["encoder_input_tokens"][:1]
    self.params = self.state.params
    self.decode_batch = {
        k: np.asarray(v) for k, v in self.batches[0].items()}

  def _lower_step(self):
    """The train step lowered for this side's state and batches (once)."""
    fn = jax.jit(steps_lib.make_train_step(self.model.loss_fn, self.opt))
    with jax.sharding.set_mesh(self.mesh), nn.logical_axis_rules(
        partitioning.LOGICAL_AXIS_RULES):
      return fn.lower(self.state, self.batches[0], self.rng)

  def _step_flops(self):
    """FLOPs of one train step by XLA's cost analysis."""
    return _flops(self.lowered)

  def decode_flops(self):
    """FLOPs of the greedy decode `decode` times: those of a teacher-forced
    forward pass over the same tokens (`score_batch`, by XLA's cost
    analysis), the contractions a KV-cached decode computes: XLA hoists the
    cross-attention keys and values out of the decoding loop, and counts a
    while loop's body once, so the loop itself cannot be analysed whole."""
    return _flops(models._score_batch.lower(  # pylint: disable=protected-access
        self.model.module, self.params, dict(self.decode_batch)))

  def rank_flops(self):
    """FLOPs of one `rank` turn, by XLA's cost analysis of every compiled
    call `score_candidates` makes (the encoder, each chunk of candidates,
    each block of prefixes), counted on one untimed call."""
    names = ("_encode", "_candidate_states", "_prefix_logsumexp")
    originals = {name: getattr(models, name) for name in names}
    per_shape, total = {}, [0.0]

    def counting(fn):
      def call(module, *args):
        key = (fn, tuple((a.shape, str(a.dtype))
                         for a in jax.tree.leaves(args)))
        if key not in per_shape:
          per_shape[key] = _flops(fn.lower(module, *args))
        total[0] += per_shape[key]
        return fn(module, *args)
      return call

    try:
      for name, fn in originals.items():
        setattr(models, name, counting(fn))
      self.model.score_candidates(self.params, self.context, self.candidates)
    finally:
      for name, fn in originals.items():
        setattr(models, name, fn)
    return total[0]

  def dot_shapes(self):
    """{(batch, m, k, n): count} of the lowered train step's contractions.

    With mixed precision on CPU every contraction is lowered as the
    row-major `[b, m, k] x [b, k, n]` (or `[m, k] x [k, n]`, b = 1) dot
    (`layers._dot_f32`), so the operand types give the shapes.
    """
    text = self.lowered.as_text()
    shapes = collections.Counter()
    for x, y in re.findall(
        r"stablehlo\.dot_general .*: \(tensor<([0-9x]+)x\w+>, "
        r"tensor<([0-9x]+)x\w+>\)", text):
      xs, ys = ([int(d) for d in t.split("x")] for t in (x, y))
      if len(xs) == 2:
        xs, ys = [1] + xs, [1] + ys
      if len(xs) != 3 or xs[2] != ys[1] or xs[0] != ys[0]:
        raise ValueError(f"not a row-major [b, m, k] x [b, k, n] dot: {x} x {y}")
      shapes[(xs[0], xs[1], xs[2], ys[2])] += 1
    return shapes

  def train(self, steps):
    """Seconds per train step (after a warm-up step)."""
    self.state, metrics = self.step(self.state, self.batches[0], self.rng)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for i in range(steps):
      self.state, metrics = self.step(
          self.state, self.batches[i % len(self.batches)], self.rng)
    jax.block_until_ready((self.state, metrics))
    self.params = self.state.params
    return (time.perf_counter() - start) / steps

  def decode(self):
    """Seconds to greedily decode one batch (targets length: the random
    targets hold no EOS, so a row ending early would be news; checked)."""
    outputs = []
    seconds = _timed(lambda: self.model.predict_batch(
        self.params, self.decode_batch), 1, outputs)
    tokens = np.asarray(outputs[0])
    if (tokens == 1).any(axis=1).all():
      steps = int(np.argmax(tokens == 1, axis=1).max()) + 1
      if steps < tokens.shape[1]:
        print(f"note: every row ended (EOS) after {steps} of "
              f"{tokens.shape[1]} steps: this decode is shorter than HF's")
    return seconds

  def decode_split(self, reps=5):
    """(encoder seconds, encoder FLOPs, seconds per decoding step) of
    `decode`: the encoder alone, and the difference between decoding every
    target position and decoding one, per step."""
    enc = jnp.asarray(self.decode_batch["encoder_input_tokens"], jnp.int32)
    length = self.decode_batch["decoder_input_tokens"].shape[1]
    encode = models._encode  # pylint: disable=protected-access
    encoder_s = _timed(lambda: encode(self.model.module, self.params, enc),
                       reps)
    full_s, one_s = (_timed(lambda n=n: self.model.predict_batch(
        self.params, self.decode_batch, max_decode_length=n), reps)
                     for n in (length, 1))
    return (encoder_s, _flops(encode.lower(self.model.module, self.params,
                                           enc)),
            (full_s - one_s) / (length - 1))

  def rank(self):
    """Seconds to score every candidate against one context (a turn)."""
    return _timed(lambda: self.model.score_candidates(
        self.params, self.context, self.candidates), 1)


def dots_alone(side, peak_gflops, reps=10):
  """Times each of the mixed step's contraction shapes alone (bf16 operands,
  float32 result, as the step runs them): the step's time if it did
  nothing but its dots, each at the speed this CPU gives that shape."""
  fn = jax.jit(lambda x, y: jax.lax.dot_general(
      x, y, (((2,), (1,)), ((0,), (0,))), preferred_element_type=jnp.float32))
  total_s = total_flop = 0.0
  rows = []
  for (b, m, k, n), count in sorted(side.dot_shapes().items(),
                                    key=lambda kv: -np.prod(kv[0]) * kv[1]):
    x = jnp.ones((b, m, k), jnp.bfloat16)
    y = jnp.ones((b, k, n), jnp.bfloat16)
    seconds = _timed(lambda: fn(x, y), reps)  # pylint: disable=cell-var-from-loop
    flop = 2.0 * b * m * k * n
    total_s += count * seconds
    total_flop += count * flop
    rows.append((b, m, k, n, count, flop / seconds / 1e9))
  for b, m, k, n, count, gflops in rows[:12]:
    print(f"  {count:3d} x [{b}, {m}, {k}] x [{b}, {k}, {n}]: {gflops:6.1f} "
          f"GFLOP/s ({gflops / peak_gflops:.2f} of peak)")
  print(f"  ... {len(rows)} shapes, {sum(r[4] for r in rows)} dots, "
        f"{total_flop / 1e9:.1f} GFLOP")
  return {"dots_alone_seconds": total_s, "dot_gflop": total_flop / 1e9,
          "dots_alone_gflops": total_flop / total_s / 1e9,
          "dots_alone_fraction_of_peak": total_flop / total_s / 1e9
                                         / peak_gflops}


def optimizer_alone(side, reps=10):
  """Seconds of the side's AdamW update alone, on its float32 parameters
  and moments with given gradients: the part of the step that is bound by
  memory bandwidth whatever the dots do."""
  # Unsharded copies: the step's (1x1-mesh) shardings, outside the step's
  # compiled in/out shardings, cost a resharding per call (~12 ms for the
  # tiny config's 2.3M parameters, against ~2.5 ms unsharded).
  params = jax.tree.map(lambda p: jnp.asarray(np.asarray(p)),
                        side.state.params)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)

  @functools.partial(jax.jit, donate_argnums=(0, 1))  # as the step does
  def update(params, opt_state, grads):
    updates, opt_state = side.opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  state = [params, side.opt.init(params)]

  def run():
    state[:] = update(*state, grads)
    return state[0]

  return _timed(run, reps)


def loss_alone(side, reps=10):
  """Seconds of the cross-entropy over the step's logits alone: float32
  [batch, targets, vocab] in, the loss and its gradient (cast to bf16, as
  the logits' contraction takes it) out. The gradient is written as one
  pass, softmax minus one-hot: the fastest form found here (autodiff's
  three passes take ~1.35x as long), so the floor below is not inflated."""
  targets = jnp.asarray(side.batches[0]["decoder_target_tokens"])
  vocab = side.model.module.config.vocab_size
  logits = jax.random.normal(jax.random.PRNGKey(0), targets.shape + (vocab,))

  @jax.custom_vjp
  def xent(logits):
    return xent_fwd(logits)[0]

  def xent_fwd(logits):
    lse = jax.nn.logsumexp(logits, axis=-1, keepdims=True)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)
    return jnp.mean(lse - picked), (logits, lse)

  def xent_bwd(residuals, g):
    logits, lse = residuals
    onehot = jnp.arange(vocab) == targets[..., None]
    return ((jnp.exp(logits - lse) - onehot) * (g / targets.size),)

  xent.defvjp(xent_fwd, xent_bwd)

  @jax.jit
  def loss_and_grad(logits):
    loss, grad = jax.value_and_grad(xent)(logits)
    return loss, grad.astype(jnp.bfloat16)

  return _timed(lambda: loss_and_grad(logits), reps)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="mini", choices=sorted(CONFIGS))
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--candidates", type=int, default=1024)
  parser.add_argument("--separate_logits", action="store_true",
                      help="T5 1.1's separate output projection (default: "
                      "tied, as Hugging Face's T5 in transformers >= 5)")
  parser.add_argument("--peak_only", action="store_true",
                      help="only the two matmul peaks (a quick check of a "
                      "CPU's bf16 support)")
  parser.add_argument("--dots_alone", action="store_true",
                      help="also time each of the mixed step's contraction "
                      "shapes alone: the fraction of the bf16 peak a step "
                      "made of nothing but its dots would reach")
  parser.add_argument("--system_malloc_reference", action="store_true",
                      help="also train ours (mixed) and HF (bf16 autocast) "
                      "under the system allocator each round")
  parser.add_argument("--real_t5x", action="store_true",
                      help="alternate with real t5x at its default "
                      "precision, if t5x is importable (it is not on PyPI: "
                      "install it from its source into this environment)")
  parser.add_argument("--hf", action="store_true",
                      help="alternate with Hugging Face PyTorch (float32), "
                      "if torch is importable")
  args = parser.parse_args()
  cfg = CONFIGS[args.config]
  emb, heads, head_dim, mlp, layers, vocab, batch, in_len, tgt_len = cfg
  print(f"config {args.config}: emb {emb}, {heads}x{head_dim} heads, mlp "
        f"{mlp}, {layers}+{layers} layers, vocab {vocab}, "
        f"{'separate' if args.separate_logits else 'tied'} logits; batch "
        f"{batch}, lengths {in_len}/{tgt_len}; AdamW; {args.steps} timed "
        f"steps x {args.rounds} rounds; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; allocator {allocator.in_use()}",
        flush=True)
  hf = args.hf
  # Only looked up: torch is imported in its own process (TensorFlow, which
  # seqio brings in here, and torch's triton crash in one process).
  if hf and importlib.util.find_spec("torch") is None:
    print("torch is not installed: no Hugging Face column")
    hf = False
  real_t5x = args.real_t5x
  if real_t5x and importlib.util.find_spec("t5x") is None:
    print("t5x is not importable here (it is not on PyPI; install it from "
          "github.com/google-research/t5x): no real t5x column")
    real_t5x = False
  peak = Peak()
  if args.peak_only:
    peaks = {p: [] for p in POLICIES}
    for r in range(args.rounds):
      for p in POLICIES:
        peaks[p].append(peak(p))
      print(f"round {r + 1}/{args.rounds}: f32 {peaks['float32'][-1]:.1f}, "
            f"bf16 -> f32 {peaks['bfloat16'][-1]:.1f}, bf16 -> bf16 "
            f"{peaks['t5x'][-1]:.1f} GFLOP/s", flush=True)
    med = {p: statistics.median(v) for p, v in peaks.items()}
    print(f"matmul peak (2048^2, medians): f32 {med['float32']:.1f} GFLOP/s, "
          f"bf16 operands -> f32 {med['bfloat16']:.1f} GFLOP/s: "
          f"{med['bfloat16'] / med['float32']:.2f}x; bf16 -> bf16 "
          f"{med['t5x']:.1f} GFLOP/s")
    print("RESULT" + json.dumps(med))
    return
  sides = {p: Side(cfg, p, not args.separate_logits, args.candidates)
           for p in POLICIES}
  inference_flops = {}
  for p in POLICIES:
    inference_flops[p] = {"decode": sides[p].decode_flops(),
                          "rank": sides[p].rank_flops()}
    print(f"{NAMES[p]}: {sides[p].flops / 1e9:.1f} GFLOP per train step, "
          f"{inference_flops[p]['decode'] / 1e9:.1f} per greedy decode, "
          f"{inference_flops[p]['rank'] / 1e9:.1f} per ranking turn (XLA "
          "cost analysis)", flush=True)
  rows = {p: {"peak": [], "step": [], "decode": [], "rank": []}
          for p in POLICIES}
  hf_tps = {side: [] for side in HF_SIDES}
  hf_inference = {side: {"decode": [], "rank": []} for side in HF_SIDES}
  paired = []  # ours mixed / HF's best side, each round
  real_t5x_tps = []
  system = {"jax": [], "torch_bf16": []}  # --system_malloc_reference
  system_env = allocator.system_env(os.environ)
  for r in range(args.rounds):
    for p in POLICIES:
      row = rows[p]
      row["peak"].append(peak(p))
      row["step"].append(sides[p].train(args.steps))
      row["decode"].append(sides[p].decode())
      row["rank"].append(sides[p].rank())
      print(f"round {r + 1}/{args.rounds} {NAMES[p]:5s}: peak "
            f"{row['peak'][-1]:6.1f} GFLOP/s, train "
            f"{sides[p].tokens_per_step / row['step'][-1]:7,.0f} tokens/s, "
            f"decode {row['decode'][-1]:.2f} s/batch, rank "
            f"{row['rank'][-1]:.2f} s/turn", flush=True)
    if hf:
      hf_args = argparse.Namespace(config=args.config, steps=args.steps,
                                   warmup=2)
      for side, label in HF_SIDES.items():
        if side not in hf_tps:
          continue
        try:
          result = _spawn(side, hf_args, candidates=args.candidates)
        except RuntimeError as e:
          if not side.endswith("_compiled"):
            raise
          lines = str(e).strip().splitlines()
          errors = [l for l in lines
                    if re.search(r"\w+(Error|Exception)\b", l)]
          reason = (errors or lines)[-1].strip()[:200]
          print(f"HF {label} is unavailable here, left out: {reason}")
          del hf_tps[side]
          continue
        hf_tps[side].append(result["tokens_per_second"])
        for key in ("decode", "rank"):
          hf_inference[side][key].append(result[f"{key}_seconds"])
        print(f"round {r + 1}/{args.rounds} HF   : train "
              f"{hf_tps[side][-1]:7,.0f} tokens/s, decode "
              f"{result['decode_seconds']:.2f} s/batch, rank "
              f"{result['rank_seconds']:.2f} s/turn ({label})", flush=True)
      ours_now = sides["bfloat16"].tokens_per_step / rows["bfloat16"][
          "step"][-1]
      paired.append(ours_now / max(v[-1] for v in hf_tps.values()))
      print(f"round {r + 1}/{args.rounds} ours mixed / HF's best this "
            f"round: {paired[-1]:.2f}x", flush=True)
    if real_t5x:
      t5x_args = argparse.Namespace(config=args.config, steps=args.steps,
                                    warmup=2)
      real_t5x_tps.append(_spawn("real_t5x", t5x_args)["tokens_per_second"])
      print(f"round {r + 1}/{args.rounds} real t5x: train "
            f"{real_t5x_tps[-1]:7,.0f} tokens/s", flush=True)
    if args.system_malloc_reference:
      child_args = argparse.Namespace(config=args.config, steps=args.steps,
                                      warmup=2)
      for side in system:
        if side == "torch_bf16" and not hf:
          continue
        result = _spawn(side, child_args, tied=not args.separate_logits,
                        matmul_dtype="bfloat16" if side == "jax" else None,
                        environ=system_env)
        system[side].append(result["tokens_per_second"])
        print(f"round {r + 1}/{args.rounds} system malloc: "
              f"{'ours mixed' if side == 'jax' else 'HF bf16 autocast'} "
              f"{system[side][-1]:7,.0f} tokens/s ({result['allocator']})",
              flush=True)

  med = {p: {k: statistics.median(v) for k, v in rows[p].items()}
         for p in POLICIES}
  print(f"\nmedians of {args.rounds} rounds     "
        + "".join(f"{NAMES[p]:>14s}" for p in POLICIES) + "   mixed/f32"
        + "   mixed/t5x")
  table = {}
  for p in POLICIES:
    m, side = med[p], sides[p]
    table[p] = dict(
        peak_gflops=m["peak"],
        tokens_per_second=side.tokens_per_step / m["step"],
        step_gflop=side.flops / 1e9,
        gflops=side.flops / 1e9 / m["step"],
        decode_seconds=m["decode"], rank_seconds=m["rank"])
    table[p]["fraction_of_peak"] = table[p]["gflops"] / m["peak"]
    table[p]["decode_tokens_per_second"] = (
        side.decode_batch["decoder_input_tokens"].size / m["decode"])
    for key in ("decode", "rank"):
      table[p][f"{key}_gflop"] = inference_flops[p][key] / 1e9
      table[p][f"{key}_gflops"] = inference_flops[p][key] / 1e9 / m[key]
      table[p][f"{key}_fraction_of_peak"] = (
          table[p][f"{key}_gflops"] / m["peak"])
  lines = [("matmul peak, GFLOP/s (2048^2)", "peak_gflops", "{:14.1f}"),
           ("train tokens/s", "tokens_per_second", "{:14,.0f}"),
           ("train step GFLOP (XLA)", "step_gflop", "{:14.1f}"),
           ("train GFLOP/s", "gflops", "{:14.1f}"),
           ("fraction of own peak", "fraction_of_peak", "{:14.2f}"),
           ("greedy decode, s/batch", "decode_seconds", "{:14.3f}"),
           ("decode tokens/s (generated)", "decode_tokens_per_second",
            "{:14,.0f}"),
           ("decode GFLOP (XLA)", "decode_gflop", "{:14.1f}"),
           ("decode GFLOP/s", "decode_gflops", "{:14.1f}"),
           ("decode fraction of own peak", "decode_fraction_of_peak",
            "{:14.2f}"),
           (f"ranking {args.candidates} cands, s/turn", "rank_seconds",
            "{:14.3f}"),
           ("ranking GFLOP (XLA)", "rank_gflop", "{:14.1f}"),
           ("ranking GFLOP/s", "rank_gflops", "{:14.1f}"),
           ("ranking fraction of own peak", "rank_fraction_of_peak",
            "{:14.2f}")]
  for label, key, fmt in lines:
    a, b, c = (table[p][key] for p in POLICIES)
    print(f"{label:31s}" + fmt.format(a) + fmt.format(b) + fmt.format(c)
          + f"   {b / a:8.2f}x   {b / c:8.2f}x")
  mixed = sides["bfloat16"]
  encoder_s, encoder_flops, decode_step_s = mixed.decode_split()
  decode_rows, length = mixed.decode_batch["decoder_input_tokens"].shape
  decode_step_flops = (inference_flops["bfloat16"]["decode"]
                       - encoder_flops) / length
  print(f"mixed decode, split: the encoder {encoder_s * 1e3:.1f} ms "
        f"({encoder_flops / encoder_s / 1e9:.0f} GFLOP/s), then "
        f"{decode_step_s * 1e3:.2f} ms per step of {decode_rows} rows "
        f"({decode_step_flops / decode_step_s / 1e9:.0f} GFLOP/s)")
  print("(t5x: t5x's default precision for T5 1.1, ACTIVATION_DTYPE="
        "'bfloat16': bf16 dot outputs; its peak is bf16 -> bf16)")
  best = None  # HF's best training tokens/s (with --hf)
  if hf:
    ours = table["bfloat16"]["tokens_per_second"]
    for side, label in HF_SIDES.items():
      if side not in hf_tps:
        continue
      hf_med = statistics.median(hf_tps[side])
      decode, rank = (statistics.median(hf_inference[side][key])
                      for key in ("decode", "rank"))
      ours_decode, ours_rank = (table["bfloat16"][f"{key}_seconds"]
                                for key in ("decode", "rank"))
      print(f"HF {label}: {hf_med:,.0f} tokens/s; ours f32 / HF "
            f"{table['float32']['tokens_per_second'] / hf_med:.2f}x, "
            f"mixed / HF {ours / hf_med:.2f}x; decode {decode:.3f} s/batch "
            f"(HF / ours mixed {decode / ours_decode:.2f}x), rank "
            f"{rank:.3f} s/turn (HF / ours mixed {rank / ours_rank:.2f}x)")
      table[f"hf_{side}_tokens_per_second"] = hf_med
      table[f"hf_{side}_decode_seconds"] = decode
      table[f"hf_{side}_rank_seconds"] = rank
    best_side = max(hf_tps, key=lambda side: table[
        f"hf_{side}_tokens_per_second"])
    best = table[f"hf_{best_side}_tokens_per_second"]
    print(f"ours mixed / HF's best setting ({HF_SIDES[best_side]}): "
          f"{ours / best:.2f}x (goal >= 1.3x); paired by round: "
          + ", ".join(f"{x:.2f}x" for x in paired)
          + f"; {sum(x >= 1.3 for x in paired)} of {len(paired)} rounds "
          ">= 1.3x")
    table["paired_ratios"] = paired
  if real_t5x:
    t5x_med = statistics.median(real_t5x_tps)
    table["real_t5x_tokens_per_second"] = t5x_med
    print(f"real t5x (its examples/t5 network and loss_fn, ACTIVATION_DTYPE="
          f"'bfloat16', AdamW): {t5x_med:,.0f} tokens/s; ours mixed / real "
          f"t5x {table['bfloat16']['tokens_per_second'] / t5x_med:.2f}x, "
          f"ours f32 / real t5x "
          f"{table['float32']['tokens_per_second'] / t5x_med:.2f}x")
  if args.system_malloc_reference:
    names = {"jax": ("mixed", table["bfloat16"]["tokens_per_second"]),
             "torch_bf16": ("hf_torch_bf16",
                            table.get("hf_torch_bf16_tokens_per_second"))}
    for side, values in system.items():
      if not values:
        continue
      key, now = names[side]
      slow = statistics.median(values)
      table[f"system_malloc_{key}_tokens_per_second"] = slow
      print(f"{key} under the system allocator: {slow:,.0f} tokens/s; "
            f"{allocator.in_use()} / system {now / slow:.2f}x")
  if args.dots_alone:
    print("\nthe mixed step's contractions, each shape timed alone:")
    alone = dots_alone(mixed, table["bfloat16"]["peak_gflops"])
    table["bfloat16"].update(alone)
    step_s = mixed.tokens_per_step / table["bfloat16"]["tokens_per_second"]
    print(f"dots alone: {alone['dots_alone_seconds'] * 1e3:.0f} ms per step "
          f"at {alone['dots_alone_gflops']:.0f} GFLOP/s = "
          f"{alone['dots_alone_fraction_of_peak']:.2f} of the bf16 peak (the "
          f"most a step of nothing but these dots reaches); the step: "
          f"{step_s * 1e3:.0f} ms, {table['bfloat16']['fraction_of_peak']:.2f}"
          " of the peak")
    adamw_s, loss_s = optimizer_alone(mixed), loss_alone(mixed)
    floor_s = alone["dots_alone_seconds"] + adamw_s + loss_s
    table["bfloat16"].update(adamw_alone_seconds=adamw_s,
                             loss_alone_seconds=loss_s,
                             dots_adamw_loss_seconds=floor_s)
    params = sum(x.size for x in jax.tree.leaves(mixed.state.params))
    print(f"AdamW alone ({params / 1e6:.1f}M float32 parameters, two "
          f"float32 moments): {adamw_s * 1e3:.1f} ms per step; the "
          f"cross-entropy alone (float32 logits, one-pass gradient): "
          f"{loss_s * 1e3:.1f} ms")
    print(f"dots alone + AdamW alone + cross-entropy alone: "
          f"{floor_s * 1e3:.0f} ms = {mixed.tokens_per_step / floor_s:,.0f} "
          f"tokens/s, "
          f"{mixed.flops / 1e9 / floor_s / table['bfloat16']['peak_gflops']:.2f}"
          " of the peak: the fastest this step runs with these kernels, "
          "before its norms, attention softmaxes and casts")
    target_s = mixed.flops / 1e9 / (0.75 * table["bfloat16"]["peak_gflops"])
    print(f"75% of the peak is a {target_s * 1e3:.0f} ms step"
          + (f"; 1.3x HF's best ({1.3 * best:,.0f} tokens/s) a "
             f"{mixed.tokens_per_step / (1.3 * best) * 1e3:.0f} ms step"
             if best else ""))
  print("RESULT" + json.dumps(table))


if __name__ == "__main__":
  main()
