"""gin/t5x/*.gin pass t5x's vocabulary check, without t5x.

Real t5x refuses to train, evaluate or infer when the model's vocabulary is
not equal (seqio's `__eq__`: file path, extra_ids and options) to the
vocabulary of the task it reads (t5x/utils.py `verify_matching_vocabs`,
called by train.py, eval.py and infer.py). t5x's model files bind
`VOCABULARY` to `gs://t5-data/vocabs/cc_all.32000.100extra` with
`extra_ids=0`, which never equals crs_tasks' bundled vocabulary with 100
extra ids, so each of our t5x files must rebind it.

t5x is not installable here, so each launch is replayed as t5x's entry points
do it: the shipped files are parsed by gin with the same search-path order,
after stand-in t5x files that bind the vocabulary and the run macros as the
real ones do, and stand-in configurables of the same names (`t5x.utils`,
`t5x.models`, `__main__.train`, ...) record what they are called with. The
model's vocabularies are then compared with each dataset's task vocabulary
exactly as `verify_matching_vocabs` does. The same launches were run with
real t5x (see the README's "For t5x users").
"""

import pathlib
import re
import sys
import types

import gin
import pytest
import seqio

import crs_tasks  # pylint: disable=unused-import
from crs_tasks import features

ROOT = pathlib.Path(__file__).resolve().parents[2]
GIN_DIR = ROOT / "gin"

# The vocabulary and run lines of real t5x files (t5x commit cc342d4),
# reduced to what the vocabulary and dataset checks read.
_T5X_MODEL = """
from __gin__ import dynamic_registration
import seqio
from t5x import models
from t5x.examples.t5 import network

DROPOUT_RATE = %gin.REQUIRED
VOCABULARY = @seqio.SentencePieceVocabulary()
seqio.SentencePieceVocabulary.sentencepiece_model_file = \
    "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model"
MODEL = @models.EncoderDecoderModel()
models.EncoderDecoderModel:
  module = @network.Transformer()
  input_vocabulary = %VOCABULARY
  output_vocabulary = %VOCABULARY
network.Transformer.config = @network.T5Config()
network.T5Config.dropout_rate = %DROPOUT_RATE
"""

_T5X_TRAIN_RUN = """
from __gin__ import dynamic_registration
import __main__ as train_script
from t5x import utils

MODEL_DIR = %gin.REQUIRED
MIXTURE_OR_TASK_NAME = %gin.REQUIRED
TASK_FEATURE_LENGTHS = %gin.REQUIRED
TRAIN_STEPS = %gin.REQUIRED
{extra}
BATCH_SIZE = 128
USE_CACHED_TASKS = True
RANDOM_SEED = None

train_script.train:
  model = %MODEL
  model_dir = %MODEL_DIR
  total_steps = %TRAIN_STEPS
  random_seed = %RANDOM_SEED
  train_dataset_cfg = @train/utils.DatasetConfig()
  train_eval_dataset_cfg = @train_eval/utils.DatasetConfig()
  infer_eval_dataset_cfg = {infer_eval}
train/utils.DatasetConfig:
  mixture_or_task_name = %MIXTURE_OR_TASK_NAME
  task_feature_lengths = %TASK_FEATURE_LENGTHS
  split = 'train'
  batch_size = %BATCH_SIZE
  use_cached = %USE_CACHED_TASKS
  seed = None  # use a new seed each run/restart
train_eval/utils.DatasetConfig:
  mixture_or_task_name = %MIXTURE_OR_TASK_NAME
  task_feature_lengths = %TASK_FEATURE_LENGTHS
  split = 'validation'
  batch_size = %BATCH_SIZE
  use_cached = %USE_CACHED_TASKS
infer_eval/utils.DatasetConfig:
  mixture_or_task_name = %MIXTURE_OR_TASK_NAME
  task_feature_lengths = None  # compute max
  split = 'validation'
  batch_size = %BATCH_SIZE
  use_cached = %USE_CACHED_TASKS
utils.create_learning_rate_scheduler.base_learning_rate = 0.001
utils.SaveCheckpointConfig.period = 5000
"""

_T5X_EVAL_RUN = """
from __gin__ import dynamic_registration
import __main__ as {script}
from t5x import utils

MIXTURE_OR_TASK_NAME = %gin.REQUIRED
CHECKPOINT_PATH = %gin.REQUIRED
{output} = %gin.REQUIRED
TASK_FEATURE_LENGTHS = {lengths}

{script}.{fn}:
  model = %MODEL
  dataset_cfg = @utils.DatasetConfig()
  output_dir = %{output}
  restore_checkpoint_cfg = @utils.RestoreCheckpointConfig()
utils.DatasetConfig:
  mixture_or_task_name = %MIXTURE_OR_TASK_NAME
  task_feature_lengths = %TASK_FEATURE_LENGTHS
  split = 'test'
  batch_size = 32
utils.RestoreCheckpointConfig.path = %CHECKPOINT_PATH
"""

STANDIN_FILES = {
    "t5x/examples/t5/t5_1_1/base.gin": _T5X_MODEL,
    "t5x/examples/t5/t5_1_1/large.gin":
        "include 't5x/examples/t5/t5_1_1/base.gin'\n",
    "t5x/configs/runs/finetune.gin": _T5X_TRAIN_RUN.format(
        extra="INITIAL_CHECKPOINT_PATH = %gin.REQUIRED\nDROPOUT_RATE = 0.1",
        infer_eval="@infer_eval/utils.DatasetConfig()"),
    "t5x/configs/runs/pretrain.gin": _T5X_TRAIN_RUN.format(
        extra="", infer_eval="None"),
    "t5x/configs/runs/eval.gin": _T5X_EVAL_RUN.format(
        script="eval_script", fn="evaluate", output="EVAL_OUTPUT_DIR",
        lengths="None"),
    "t5x/configs/runs/infer.gin": _T5X_EVAL_RUN.format(
        script="infer_script", fn="infer", output="INFER_OUTPUT_DIR",
        lengths="%gin.REQUIRED"),
}

# (entry point, --gin_file flags, --gin.X overrides): the README's launches.
LAUNCHES = {
    "train_finetune_base": ("train", ["t5x/t5cr_finetune_base.gin"],
                            ["MODEL_DIR = '/tmp/m'"]),
    "train_finetune_large": ("train", ["t5x/t5cr_finetune_large.gin"],
                             ["MODEL_DIR = '/tmp/m'"]),
    "train_from_scratch_tiny": ("train", ["t5x/t5cr_from_scratch_tiny.gin"],
                                ["MODEL_DIR = '/tmp/m'"]),
    "eval_base": ("evaluate", ["t5x/examples/t5/t5_1_1/base.gin",
                               "t5x/t5cr_eval.gin"],
                  ["CHECKPOINT_PATH = '/tmp/m/checkpoint_1'",
                   "EVAL_OUTPUT_DIR = '/tmp/e'"]),
    "eval_tiny": ("evaluate", ["t5x/t5cr_tiny.gin", "t5x/t5cr_eval.gin"],
                  ["CHECKPOINT_PATH = '/tmp/m/checkpoint_1'",
                   "EVAL_OUTPUT_DIR = '/tmp/e'",
                   "MIXTURE_OR_TASK_NAME = 'crs_sample_redial_v002'"]),
    "infer_tiny": ("infer", ["t5x/t5cr_tiny.gin", "t5x/t5cr_infer.gin"],
                   ["CHECKPOINT_PATH = '/tmp/m/checkpoint_1'",
                    "INFER_OUTPUT_DIR = '/tmp/i'",
                    "MIXTURE_OR_TASK_NAME = 'crs_sample_redial_v002'"]),
}


def _recorder(name):
  def record(**kwargs):
    return types.SimpleNamespace(configurable=name, **kwargs)
  record.__name__ = record.__qualname__ = name.rsplit(".", 1)[-1]
  return record


def _standin_modules():
  """Modules named like t5x's, holding recording configurables."""
  modules = {}
  for name, attrs in {
      "t5x": (),
      "t5x.utils": ("DatasetConfig", "RestoreCheckpointConfig",
                    "SaveCheckpointConfig", "CheckpointConfig",
                    "create_learning_rate_scheduler"),
      "t5x.models": ("EncoderDecoderModel",),
      "t5x.examples": (),
      "t5x.examples.t5": (),
      "t5x.examples.t5.network": ("T5Config", "Transformer"),
  }.items():
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so submodules import
    for attr in attrs:
      setattr(module, attr, _recorder(f"{name}.{attr}"))
    modules[name] = module
  modules["t5x"].utils = modules["t5x.utils"]
  modules["t5x"].models = modules["t5x.models"]
  modules["t5x"].examples = modules["t5x.examples"]
  modules["t5x.examples"].t5 = modules["t5x.examples.t5"]
  modules["t5x.examples.t5"].network = modules["t5x.examples.t5.network"]
  return modules


# One set of recording functions for the session: gin registers them once.
_MODULES = _standin_modules()
_ENTRY_POINTS = {name: _recorder(f"__main__.{name}")
                 for name in ("train", "evaluate", "infer")}


@pytest.fixture(scope="module")
def standin_t5x_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("t5x_standin")
  for path, text in STANDIN_FILES.items():
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
  return root


def _launch(monkeypatch, standin_dir, entry, files, overrides):
  """Parses like t5x's gin_utils.parse_gin_flags; calls the entry point."""
  for name, module in _MODULES.items():
    monkeypatch.setitem(sys.modules, name, module)
  main = sys.modules["__main__"]
  for name, fn in _ENTRY_POINTS.items():
    monkeypatch.setattr(main, name, fn, raising=False)
  # --gin_search_paths=<t5x>,<repo>/gin: t5x's files first, then ours.
  monkeypatch.setattr(gin.config, "_LOCATION_PREFIXES",
                      ["", str(standin_dir), str(GIN_DIR)])
  gin.clear_config()
  try:
    gin.parse_config_files_and_bindings(files, overrides)
    return gin.get_configurable(_ENTRY_POINTS[entry])()
  finally:
    gin.clear_config()


def _task_vocabularies(cfg):
  """t5x's utils.get_vocabulary: the provider's inputs/targets vocabularies."""
  provider = seqio.get_mixture_or_task(cfg.mixture_or_task_name)
  return (provider.output_features["inputs"].vocabulary,
          provider.output_features["targets"].vocabulary)


def _describe(vocab):
  return (f"{type(vocab).__name__}({vocab.sentencepiece_model_file!r}, "
          f"extra_ids={vocab.extra_ids})")


def _dataset_configs(call):
  names = ("train_dataset_cfg", "train_eval_dataset_cfg",
           "infer_eval_dataset_cfg", "dataset_cfg")
  return {n: getattr(call, n) for n in names
          if getattr(call, n, None) is not None}


def test_every_t5x_file_is_launched():
  used = set()
  for _, files, _ in LAUNCHES.values():
    used.update(files)
  shipped = {f"t5x/{p.name}" for p in (GIN_DIR / "t5x").glob("*.gin")}
  # t5cr_finetune.gin is included by the _base and _large files.
  assert shipped - {"t5x/t5cr_finetune.gin"} <= used, shipped - used


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_model_vocabulary_equals_task_vocabulary(monkeypatch, standin_t5x_dir,
                                                 launch):
  entry, files, overrides = LAUNCHES[launch]
  call = _launch(monkeypatch, standin_t5x_dir, entry, files, overrides)
  model = call.model
  configs = _dataset_configs(call)
  assert configs, "the launch reads no dataset"
  for name, cfg in configs.items():
    inputs_vocab, targets_vocab = _task_vocabularies(cfg)
    # verify_matching_vocabs, with seqio's own equality.
    # (str() of a vocabulary would read its gs:// file; name it by hand.)
    assert inputs_vocab == model.input_vocabulary, (
        name, _describe(model.input_vocabulary))
    assert targets_vocab == model.output_vocabulary, (
        name, _describe(model.output_vocabulary))
  assert model.input_vocabulary == features.get_vocabulary()


def test_t5x_default_vocabulary_would_fail(monkeypatch, standin_t5x_dir):
  """The check is not vacuous: t5x's own model file binding is unequal."""
  call = _launch(monkeypatch, standin_t5x_dir, "evaluate",
                 ["t5x/examples/t5/t5_1_1/base.gin", "t5x/configs/runs/eval.gin"],
                 ["CHECKPOINT_PATH = 'c'", "EVAL_OUTPUT_DIR = 'e'",
                  "MIXTURE_OR_TASK_NAME = 'crs_sample_redial_v002'",
                  "DROPOUT_RATE = 0.0"])
  task_vocab, _ = _task_vocabularies(call.dataset_cfg)
  assert call.model.input_vocabulary != task_vocab
  # Same file, other extra_ids: unequal too (why the path alone is not enough).
  assert features.get_vocabulary() != seqio.SentencePieceVocabulary(
      features.DEFAULT_VOCAB_PATH, extra_ids=0)


@pytest.mark.parametrize("launch", ["train_finetune_base",
                                    "train_finetune_large"])
def test_in_training_decoding_uses_the_paper_lengths(monkeypatch,
                                                     standin_t5x_dir, launch):
  entry, files, overrides = LAUNCHES[launch]
  call = _launch(monkeypatch, standin_t5x_dir, entry, files, overrides)
  paper = {"inputs": 512, "targets": 128}
  assert call.infer_eval_dataset_cfg.task_feature_lengths == paper
  assert call.train_dataset_cfg.task_feature_lengths == paper
  assert call.train_dataset_cfg.use_cached is False


def test_tiny_from_scratch_is_seeded(monkeypatch, standin_t5x_dir):
  """t5x's pretrain.gin seeds nothing; a reproducible run needs both."""
  entry, files, overrides = LAUNCHES["train_from_scratch_tiny"]
  call = _launch(monkeypatch, standin_t5x_dir, entry, files, overrides)
  assert call.random_seed == 0
  assert call.train_dataset_cfg.seed == 0


def test_tiny_from_scratch_reads_the_bundled_sample(monkeypatch,
                                                    standin_t5x_dir):
  entry, files, overrides = LAUNCHES["train_from_scratch_tiny"]
  call = _launch(monkeypatch, standin_t5x_dir, entry, files, overrides)
  cfg = call.train_dataset_cfg
  assert cfg.mixture_or_task_name == "crs_sample_t5cr_v002"
  assert cfg.use_cached is False
  assert call.total_steps == 200
  assert call.model.module.config.emb_dim == 128


def test_infer_header_shows_the_line_t5x_writes(tmp_path):
  """t5x's infer.py (write_inferences_to_file, default options) writes only
  the task's `*_pretokenized` features under `inputs`; real t5x wrote
  exactly {"inputs_pretokenized", "targets_pretokenized"} for
  crs_sample_redial_v002, not the conversation_id the header once named."""
  header = [line for line in
            (GIN_DIR / "t5x" / "t5cr_infer.gin").read_text().splitlines()
            if line.startswith("#")]
  start = next(i for i, line in enumerate(header) if '{"inputs": {' in line)
  shown = " ".join(line.lstrip("# ") for line in header[start:start + 3])
  seqio.set_tfds_data_dir_override(str(tmp_path))
  try:
    task = seqio.get_mixture_or_task("crs_sample_redial_v002")
    example = next(task.get_dataset(None, split="test", shuffle=False,
                                    use_cached=False).as_numpy_iterator())
  finally:
    seqio.set_tfds_data_dir_override(None)
  written = {k for k in example if k.endswith("_pretokenized")}
  assert written == {"inputs_pretokenized", "targets_pretokenized"}
  assert set(re.findall(r'"(\w+)":', shown)) == written | {"inputs",
                                                             "prediction"}
  assert "conversation_id" in example  # kept by the task, not by t5x
