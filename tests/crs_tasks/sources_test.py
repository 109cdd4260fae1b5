"""No surprise downloads, missing inputs named at once, no empty dirs left.

Every test runs the real TFDS builders on small fixtures (copies of the
bundled sample); a download attempt without consent fails the test.
"""

import json
import os
import shutil

import pytest
import seqio
import tensorflow_datasets as tfds

import crs_tasks  # pylint: disable=unused-import  (registers the tasks)
from crs_runtime import errors
from crs_tasks import prepare
from crs_tasks.tfds_builders import movielens as movielens_builder
from crs_tasks.tfds_builders import redial as redial_builder
from crs_tasks.tfds_builders import sources
from train import input_pipeline

_FILES = ("train_data.jsonl", "test_data.jsonl", "movies_with_mentions.csv")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
  """Any download attempt fails the test (and records that it happened)."""
  attempts = []

  def refuse(self, *args, **kwargs):
    del self, kwargs
    attempts.append(args)
    raise AssertionError(f"download attempted: {args}")

  monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                      refuse)
  monkeypatch.delenv(sources.ENV_ALLOW, raising=False)
  return attempts


def _redial_dir(tmp_path, name="redial", skip=(), train_text=None):
  folder = tmp_path / name
  folder.mkdir()
  for file in _FILES:
    if file in skip:
      continue
    shutil.copy(os.path.join(redial_builder.SAMPLE_DIR, file), folder / file)
  if train_text is not None:
    (folder / "train_data.jsonl").write_text(train_text, encoding="utf-8")
  return folder


def _tree(path):
  return sorted(
      os.path.relpath(os.path.join(d, f), path)
      for d, dirs, files in os.walk(path) for f in files + dirs)


def test_unprepared_full_redial_says_run_prepare_first(tmp_path, no_network):
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  with pytest.raises(errors.UserError) as e:
    redial_builder.prepare_redial(str(data_dir))
  message = str(e.value)
  assert "crs_redial/full is not prepared" in message
  assert "run prepare first" in message
  assert (f"python -m crs_tasks.prepare --data_dir={data_dir} "
          "--redial_dir=<dir>") in message
  assert ("<dir> holds train_data.jsonl or train_partial.jsonl, "
          "test_data.jsonl and movies_with_mentions.csv") in message
  assert not no_network  # Nothing was downloaded.
  assert _tree(data_dir) == []  # And nothing was left behind.


def test_train_on_unprepared_task_fails_before_any_work(tmp_path, no_network):
  seqio.set_tfds_data_dir_override(str(tmp_path))
  try:
    cfg = input_pipeline.DatasetConfig(
        "crs_redial_v001", {"inputs": 16, "targets": 8}, "train", 2)
    with pytest.raises(errors.UserError, match="run prepare first"):
      input_pipeline.check_prepared(cfg)
    # The bundled sample twin prepares itself: no error.
    input_pipeline.check_prepared(
        input_pipeline.DatasetConfig(
            "crs_sample_t5cr_v001", {"inputs": 16, "targets": 8}, "train", 2))
  finally:
    seqio.set_tfds_data_dir_override(None)
  assert not no_network
  assert _tree(tmp_path) == []


def test_misspelled_redial_dir_is_named_at_once(tmp_path):
  _redial_dir(tmp_path)
  with pytest.raises(errors.UserError, match=r"redail: the ReDial directory "
                     r"does not exist.*--redial_dir"):
    prepare.prepare(data_dir=str(tmp_path / "tfds"),
                    redial_dir=str(tmp_path / "redail"))
  assert not (tmp_path / "tfds").exists()


def test_missing_movie_csv_is_named(tmp_path):
  folder = _redial_dir(tmp_path, skip=("movies_with_mentions.csv",))
  with pytest.raises(errors.UserError) as e:
    prepare.prepare(data_dir=str(tmp_path / "tfds"), redial_dir=str(folder))
  assert str(e.value).startswith(
      f"{folder}: the ReDial directory lacks movies_with_mentions.csv.")
  assert "--download" in str(e.value)
  # The fix names the train files accepted (../shared/data ships
  # train_partial.jsonl).
  assert ("(train_data.jsonl or train_partial.jsonl, test_data.jsonl, "
          "movies_with_mentions.csv)") in str(e.value)


def test_movie_csv_without_movie_name_is_one_line(tmp_path):
  folder = _redial_dir(tmp_path)
  (folder / "movies_with_mentions.csv").write_text(
      "movieId,title,nbMentions\n1,Heat (1995),3\n", encoding="utf-8")
  with pytest.raises(errors.UserError) as e:
    prepare.prepare(data_dir=str(tmp_path / "tfds"), redial_dir=str(folder))
  assert str(e.value).startswith(
      f"{folder}/movies_with_mentions.csv:1: expected the header "
      "movieId,movieName")
  assert "\n" not in str(e.value)


def test_empty_train_jsonl_names_the_file_and_leaves_nothing(tmp_path):
  folder = _redial_dir(tmp_path, train_text="")
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  with pytest.raises(errors.UserError) as e:
    prepare.prepare(data_dir=str(data_dir), redial_dir=str(folder))
  assert str(e.value).startswith(
      f"{folder}/train_data.jsonl: no train examples")
  assert _tree(data_dir) == []


def test_empty_ratings_csv_names_the_file(tmp_path):
  ml = tmp_path / "ml" / "ml-latest-small"
  shutil.copytree(os.path.join(movielens_builder.SAMPLE_DIR, "movielens"), ml)
  (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\n",
                                  encoding="utf-8")
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  with pytest.raises(errors.UserError, match=r"ratings\.csv: "
                     r"crs_movielens/sequences_small: no examples"):
    prepare.prepare(data_dir=str(data_dir), movielens_dir=str(ml.parent),
                    movielens_source="ml-latest-small")
  assert _tree(data_dir) == []


def test_reviews_without_csv_says_which_file_and_how(tmp_path):
  with pytest.raises(errors.UserError) as e:
    tfds.builder("crs_movielens/reviews_full",
                 data_dir=str(tmp_path)).download_and_prepare()
  message = str(e.value)
  assert "needs a reviews CSV" in message
  assert f"--data_dir={tmp_path} --reviews_csv=<file>" in message
  # The mixtures named are the current version's.
  assert "crs_t5cr_no_reviews_v002" in message
  assert "crs_sample_t5cr_v002" in message and "_v001" not in message


def test_download_only_when_asked_and_announced(tmp_path, monkeypatch,
                                                capsys, no_network):
  ml_url = movielens_builder.URLS["ml-latest-small"]
  extracted = {
      redial_builder.URL: _redial_dir(tmp_path, name="extracted"),
      ml_url: tmp_path / "ml",
  }
  shutil.copytree(os.path.join(movielens_builder.SAMPLE_DIR, "movielens"),
                  tmp_path / "ml" / "ml-latest-small")

  def fake_download(self, url):
    del self
    no_network.append(url)
    return str(extracted[url])

  monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                      fake_download)
  counts = prepare.prepare(data_dir=str(tmp_path / "tfds"), download=True,
                           movielens_source="ml-latest-small")
  # Asked for by each config (TFDS fetches a URL once); announced first.
  assert sorted(no_network) == sorted([redial_builder.URL, ml_url, ml_url])
  out = capsys.readouterr().out
  assert (f"Will download {redial_builder.URL}: about 6 MB (33 MB unpacked; "
          "not pinned yet); expected time at 10 Mbit/s: under a minute.") in out
  assert (f"Will download {ml_url}: 1 MB; expected time at 10 Mbit/s: a few "
          "seconds.") in out
  assert out.index("Will download") < out.index("Downloading")
  assert counts["crs_redial/full"] == {"train": 1191, "validation": 72,
                                       "test": 284}
  assert set(counts) == {"crs_redial/full", "crs_movielens/sequences_small",
                         "crs_movielens/tags_small"}
  assert not sources.allowed()  # The consent ends with the command.


def test_first_use_shows_one_line_of_ours_and_logs_tfds(tmp_path, capsys,
                                                         caplog, monkeypatch):
  """Nothing downloaded: TFDS's prints go to the log and its bars are off."""
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv("CRS_LOGS", raising=False)
  with caplog.at_level("INFO"):
    tfds.builder("crs_redial/sample",
                 data_dir=str(tmp_path / "a")).download_and_prepare()
  out, err = capsys.readouterr()
  assert out.splitlines() == [
      f"Preparing crs_redial/sample in {tmp_path / 'a'} (first use; nothing "
      "is downloaded) ..."]
  assert "Downloading and preparing" not in out + err
  assert not _tfds_bars(err)
  logged = "\n".join(r.getMessage() for r in caplog.records)
  assert "TFDS: Downloading and preparing dataset" in logged
  assert tqdm_utils._active  # TFDS's bars are back on  # pylint: disable=protected-access
  # Prepared already: nothing at all is printed.
  tfds.builder("crs_redial/sample",
               data_dir=str(tmp_path / "a")).download_and_prepare()
  assert capsys.readouterr() == ("", "")
  # CRS_LOGS=stderr keeps all of TFDS's output on the terminal (so the
  # checks above are not vacuous).
  monkeypatch.setenv("CRS_LOGS", "stderr")
  tfds.builder("crs_redial/sample",
               data_dir=str(tmp_path / "b")).download_and_prepare()
  out, err = capsys.readouterr()
  assert "Preparing crs_redial/sample" not in out
  assert "Downloading and preparing dataset" in out and _tfds_bars(err)


def _tfds_bars(err):
  """Progress bars in `err` other than our own ReDial parse bar (shown
  after 2 s, under load)."""
  return [line for line in err.replace("\r", "\n").splitlines()
          if "%|" in line and not line.startswith("parsing ")]


def test_unresolved_mentions_are_counted_in_the_prepare_summary(tmp_path):
  folder = _redial_dir(tmp_path)
  with open(os.path.join(redial_builder.SAMPLE_DIR, "test_data.jsonl"),
            encoding="utf-8") as f:
    lines = f.readlines()
  dialogue = json.loads(lines[0])
  dialogue["messages"][0]["text"] += " and @99999999"
  lines[0] = json.dumps(dialogue) + "\n"
  (folder / "test_data.jsonl").write_text("".join(lines), encoding="utf-8")
  report = []
  prepare.prepare(data_dir=str(tmp_path / "tfds"), redial_dir=str(folder),
                  report=report)
  assert report[0].startswith("crs_redial/full: 0 malformed line(s) skipped, "
                              "1 @id mention(s) in neither")
  assert report[1] == "  test_data.jsonl:1: @99999999"
  builder = tfds.builder("crs_redial/full", data_dir=str(tmp_path / "tfds"))
  for example in builder.as_dataset(split="test").take(20):
    assert b"99999999" not in example["context"].numpy()
    assert b"99999999" not in example["response"].numpy()
