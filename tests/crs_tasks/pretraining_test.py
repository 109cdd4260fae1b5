"""Tests of the study's pretraining Task and corpus (crs_tasks/pretraining.py,
crs_tasks/pretrain_corpus.py) on the bundled sample."""

import seqio

import crs_tasks  # pylint: disable=unused-import
from crs_tasks import features
from crs_tasks import pretrain_corpus

TASK = "crs_sample_pretrain_span_corruption_v001"


def test_title_documents_literal():
  assert pretrain_corpus.title_documents(["A (1)", "B (2)", "C (3)"], 2) == [
      "@ A (1) @, @ B (2) @", "@ C (3) @"]


def test_corpus_has_dialogues_once_and_no_auxiliary_signal():
  docs = pretrain_corpus.corpus("sample", "sequences_sample", "train")
  # Each sample train dialogue with a recommender turn, once.
  assert len(docs["redial"]) == len(set(docs["redial"])) > 100
  assert all(d.startswith(("[User]", "[Assistant]")) for d in docs["redial"])
  titles = pretrain_corpus.movielens_titles("sequences_sample")
  assert titles == sorted(set(titles))
  text = " ".join(docs["movielens"])
  for leak in ("movielens sequence:", "movielens tags", "|", "Comedy,"):
    assert leak not in text
  assert not pretrain_corpus.corpus(
      "sample", "sequences_sample", "validation")["movielens"]


def test_task_gives_t5_span_corruption_examples():
  task = seqio.get_mixture_or_task(TASK)
  ds = task.get_dataset({"inputs": 128, "targets": 32}, split="train",
                        shuffle=False)
  vocab = features.get_vocabulary()
  sentinel0 = vocab.vocab_size - 1
  examples = list(ds.take(20).as_numpy_iterator())
  for ex in examples:
    assert len(ex["inputs"]) <= 128 and len(ex["targets"]) <= 29
    assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS.
    assert ex["targets"][0] == sentinel0  # Targets open with <extra_id_0>.
    assert sentinel0 in ex["inputs"]
  assert vocab.decode([sentinel0]) == "<extra_id_0>"
