r"""Writes a Markdown report and plots comparing evaluated model dirs.

  python -m eval.report --model_dirs=/runs/a,/runs/b,/runs/c \
      --labels=redial_only,t5cr,t5cr --output_dir=/tmp/report

Model dirs sharing a label are seeds of one setting: the table shows their
mean ± sample std. Without `--labels`, each dir is labelled by the
`MIXTURE_OR_TASK_NAME` in its `config.gin`. See `eval/reporting.py`. The
command ends with where the files are and the command that shows the report.
"""

import os
import shlex

from absl import app
from absl import flags

from crs_runtime import cli  # pylint: disable=g-bad-import-order

# Before TensorFlow and JAX load, so their start-up logs reach the
# command's log file (a no-op unless this module is the command).
cli.capture_early()
# pylint: disable=g-import-not-at-top,g-bad-import-order

from eval import reporting
from eval.probes import oracles as oracles_lib

if __name__ == "__main__":
  # Flags are defined here only, so importing this module defines none.
  _MODEL_DIRS = flags.DEFINE_list(
      "model_dirs", None, "Model dirs evaluated by eval.main."
  )
  _LABELS = flags.DEFINE_list(
      "labels", None, "One row label per model dir (default: its mixture)."
  )
  _OUTPUT_DIR = flags.DEFINE_string(
      "output_dir", None, "Where report.md and the PNGs go."
  )
  _STEP = flags.DEFINE_integer(
      "step", None, "Evaluated step to read (default: the latest of each dir)."
  )
  _PROBE_DIR = flags.DEFINE_string(
      "probe_dir", None,
      "The probes' folder: its oracles.json (eval.probes.main --oracles) "
      "adds the probe table with the oracle rows.")
  _BASELINE = flags.DEFINE_string(
      "baseline", None,
      "A label: McNemar tests of every other label against it, per probe.")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _MODEL_DIRS.value or not _OUTPUT_DIR.value:
      raise app.UsageError("--model_dirs and --output_dir are required")
    if _LABELS.value and len(_LABELS.value) != len(_MODEL_DIRS.value):
      raise app.UsageError(
          f"{len(_LABELS.value)} --labels given for "
          f"{len(_MODEL_DIRS.value)} --model_dirs; give one label per dir")
    # Every dir is read before anything is written (no logs/ on a failure).
    for model_dir in _MODEL_DIRS.value:
      reporting.load_run(model_dir, step=_STEP.value)
    log = cli.log_to(_OUTPUT_DIR.value)
    written = reporting.write_report(
        model_dirs=_MODEL_DIRS.value,
        labels=_LABELS.value,
        output_dir=_OUTPUT_DIR.value,
        step=_STEP.value,
        oracles=(oracles_lib.read_oracles(_PROBE_DIR.value)
                 if _PROBE_DIR.value else None),
        baseline=_BASELINE.value,
    )
    names = [os.path.basename(written[kind])
             for kind in ("report", "probes", "recall", "curves")
             if kind in written]
    print(f"Outputs in {_OUTPUT_DIR.value}: {', '.join(names)}"
          + (f"; log: {log}" if log else ""))
    print(cli.next_command(f"cat {shlex.quote(written['report'])}"),
          flush=True)

  cli.run(main, name="report")
