r"""Talks with a trained T5-CR model in the terminal.

  python -m crs_chat.main --checkpoint_path=/tmp/t5cr_sample \
      [--catalogue=../shared/data/redial/movies_with_mentions.csv,...]

Type messages; titles typed capitalised, with a year or in quotes are matched
to the catalogue and sent to the model as `@ Title (Year) @`. The reply is
shown with its recommended titles. Commands: /reset, /history, /help, /quit.
Input may be piped (`printf 'hi\n/quit\n' | python -m crs_chat.main ...`). The
conversation logic is `crs_chat/chat_lib.py`. `--checkpoint_path` is a run
directory (MODEL_DIR of `train.main`) or one of its `checkpoints/<step>`
directories, like CHECKPOINT_PATH of `eval.main` and `train.infer`
(`--checkpoint` is its deprecated spelling). At the end it prints where its
log is and the command that evaluates the checkpoint (on the mixture named
in the run's `config.gin`).
"""

import glob
import os
import sys
from typing import Optional, Sequence, TextIO

from absl import app
from absl import flags

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow and JAX load, so their start-up logs reach the
# command's log file (a no-op unless this module is the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

from crs_chat import catalogue as catalogue_lib
from crs_chat import chat_lib
from train import checkpointing
from train import decoding
from train import inference
from train import model_inputs

_SAMPLE_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "crs_tasks", "sample_data",
)


def default_catalogue_files() -> list[str]:
  """Movie lists shipped in `crs_tasks/sample_data`."""
  return sorted(
      path
      for name in ("movies_with_mentions.csv", "movies.csv")
      for path in glob.glob(os.path.join(_SAMPLE_DATA, "**", name),
                            recursive=True)
  )


def end_lines(checkpoint: str, log: Optional[str]) -> str:
  """What chat prints at exit: where its log is and what to run next."""
  model_dir, _ = checkpointing.split_checkpoint_path(checkpoint, check=False)
  name, lengths = checkpointing.trained_on(model_dir)
  return (f"\nOutputs: none (the transcript is above, not saved)"
          + (f"; log: {log}" if log else "") + "\n"
          + cli.next_command(cli.eval_command(checkpoint, name, lengths)))


def run_chat(
    *,
    checkpoint: str,
    catalogue_paths: Sequence[str],
    step: Optional[int] = None,
    decode: inference.DecodeConfig = inference.DecodeConfig(
        max_decode_length=64),
    inputs_length: int = 512,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> int:
  """Loads the model and catalogue and chats over `stdin` until /quit.

  Args:
    checkpoint: model dir of a training run.
    catalogue_paths: movie list CSVs (`default_catalogue_files()` if empty).
    step: checkpoint step; the latest when None.
    decode: decoding settings (`max_decode_length` bounds the reply).
    inputs_length: model input tokens; the oldest turns are dropped to fit.
    stdin: where user lines come from (echoed unless a terminal).
    stdout: where the transcript and, on a terminal, the `you> ` prompt go
      (never the log file that holds descriptor 2).

  Returns:
    The number of model replies.
  """
  paths = list(catalogue_paths) or default_catalogue_files()
  if not paths:
    raise ValueError(f"no movie list in {_SAMPLE_DATA}; pass --catalogue")
  catalogue = catalogue_lib.load_catalogue(paths)
  model, params, step = checkpointing.load_model(checkpoint, step=step)
  reply_length = decode.max_decode_length or 64

  lengths = {"inputs": inputs_length, "targets": reply_length}

  def generate_fn(text: str) -> str:
    ids = model_inputs.tokenize_texts(model.input_vocabulary, [text],
                                      inputs_length)
    return inference.generate(model, params, [{"inputs": ids[0]}],
                          task_feature_lengths=lengths, decode=decode,
                          batch_size=1, progress=False)[0]

  def fits(text: str) -> bool:
    return len(model.input_vocabulary.encode(text)) < inputs_length

  session = chat_lib.ChatSession(catalogue, generate_fn, fits)
  interactive = stdin.isatty()
  stdout.write(f"T5-CR chat: {checkpoint} step {step}, {len(catalogue)} "
               "titles. /help for commands.\n")

  def lines():
    while True:
      if interactive:
        # Not input("you> "): without GNU readline, Python writes that
        # prompt to descriptor 2, which the log capture sends to the log.
        stdout.write("you> ")
        stdout.flush()
      try:
        line = stdin.readline()
      except KeyboardInterrupt:
        line = ""
      if not line:  # end of input (Ctrl-D on a terminal)
        if interactive:
          stdout.write("\n")
        return
      yield line

  return chat_lib.chat_loop(session, lines(), stdout, echo=not interactive)


if __name__ == "__main__":
  # Flags are defined here only, so importing this module defines none.
  _CHECKPOINT_PATH = flags.DEFINE_string(
      "checkpoint_path", None,
      "A training run dir (MODEL_DIR) or one of its checkpoints/<step>.")
  _CHECKPOINT = flags.DEFINE_string(
      "checkpoint", None, "Deprecated: --checkpoint_path.")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (latest).")
  _CATALOGUE = flags.DEFINE_list(
      "catalogue", [], "ReDial movies_with_mentions.csv / MovieLens "
      "movies.csv files (default: those in crs_tasks/sample_data).")
  _DECODE_METHOD = flags.DEFINE_enum(
      "decode_method", "greedy", list(decoding.DECODE_METHODS), "Decoding.")
  _NUM_BEAMS = flags.DEFINE_integer("num_beams", 4, "Beam width.")
  _TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temp.")
  _INPUTS_LENGTH = flags.DEFINE_integer("inputs_length", 512, "Input tokens.")
  _MAX_DECODE_LENGTH = flags.DEFINE_integer("max_decode_length", 64, "Reply.")

  def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    checkpoint = _CHECKPOINT_PATH.value
    if _CHECKPOINT.value:
      print("warning: --checkpoint is deprecated; use --checkpoint_path",
            file=sys.stderr, flush=True)
      checkpoint = checkpoint or _CHECKPOINT.value
    if not checkpoint:
      raise app.UsageError(
          "--checkpoint_path is required: a training run directory "
          "(e.g. --checkpoint_path=/tmp/t5cr_sample)")
    model_dir, _ = checkpointing.split_checkpoint_path(checkpoint)
    log = cli.log_to(model_dir)
    run_chat(
        checkpoint=checkpoint, step=_STEP.value,
        catalogue_paths=_CATALOGUE.value, inputs_length=_INPUTS_LENGTH.value,
        decode=inference.DecodeConfig(
            method=_DECODE_METHOD.value, num_beams=_NUM_BEAMS.value,
            temperature=_TEMPERATURE.value,
            max_decode_length=_MAX_DECODE_LENGTH.value))
    print(end_lines(checkpoint, log), flush=True)

  cli.run(main, name="chat")
