"""crs_tasks/tfds_source.py: shards can be listed on a fresh TFDS data dir.

t5x lists a Task's shards before it reads anything; seqio's own
TfdsDataSource then fails with TFDS's "`splits` is empty". Run in a fresh
interpreter with a fresh TFDS_DATA_DIR: seqio memoizes builders per process.
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

_SCRIPT = """
import seqio
import crs_tasks
from crs_runtime import errors
t = seqio.get_mixture_or_task("crs_sample_redial_v002")
print("shards", len(t.source.list_shards("train")))
print("validation", t.num_input_examples("validation"))
# What t5x does on each host.
n = sum(1 for _ in t.get_dataset({"inputs": 64, "targets": 16}, split="test",
                                 shuffle=False,
                                 shard_info=seqio.ShardInfo(0, 1)))
print("test", n)
try:
  seqio.get_mixture_or_task("crs_redial_v002").source.list_shards("train")
except errors.UserError as e:
  print("full:", str(e).splitlines()[0])
"""


def test_fresh_data_dir_lists_sample_shards_and_names_prepare_for_full(
    tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path), JAX_PLATFORMS="cpu",
             CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [l for l in proc.stdout.splitlines()
           if l.split(" ")[0] in ("shards", "validation", "test", "full:")]
  # The bundled sample: one train shard; 72 validation and 284 test
  # examples (crs_tasks/sample_data/redial, as prepared by TFDS).
  assert lines[:3] == ["shards 1", "validation 72", "test 284"]
  # The full config is not prepared and is not downloaded: the prepare
  # command, at once.
  assert "crs_redial/full is not prepared" in lines[3]
  assert "python -m crs_tasks.prepare" in lines[3]
  assert (tmp_path / "crs_redial" / "sample" / "1.0.0").is_dir()
  assert not (tmp_path / "crs_redial" / "full" / "1.0.0").exists()
