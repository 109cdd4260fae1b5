"""Tests of the registered ReDial Tasks (crs_tasks/redial.py) and the
`crs_redial` TFDS builder on the bundled sample.

Goldens: the literal-example test writes its expected strings by hand; the
sample test's expected example is conversation 20001 (first line of the
bundled test_data.jsonl), written out by hand from its messages; per-split
counts are re-derived from the raw jsonl by `_count_recommender_turns`, a
separate few-line computation.
"""

import json
import os

import pytest
import seqio
import tensorflow as tf

from crs_tasks import features
from crs_tasks import redial  # pylint: disable=unused-import
from crs_tasks import redial_utils
from crs_tasks.tfds_builders import redial as redial_builder

_LENGTHS = {"inputs": 512, "targets": 128}
_NAMES = {
    f"{prefix}_{name}_{version}"
    for prefix in ("crs", "crs_sample")
    for name in ("redial", "redial_cased")
    for version in ("v001", "v002")
}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A fresh TFDS data dir; `crs_redial/sample` is prepared on first use."""
  path = str(tmp_path_factory.mktemp("tfds"))
  seqio.set_tfds_data_dir_override(path)
  for name in _NAMES:
    # The loader memoizes the override it saw first; point it here.
    seqio.get_mixture_or_task(name).source.tfds_dataset.override_data_dir(path)
  yield path
  seqio.set_tfds_data_dir_override(None)


def _count_recommender_turns(path):
  """Independent count: maximal runs of non-seeker, non-empty messages."""
  turns = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      d = json.loads(line)
      senders = [
          m["senderWorkerId"] == d["initiatorWorkerId"]
          for m in d["messages"]
          if m["text"].strip()
      ]
      turns[d["conversationId"]] = sum(
          1
          for i, s in enumerate(senders)
          if not s and (i == 0 or senders[i - 1])
      )
  return turns


def test_registered_names():
  names = {
      n
      for n in seqio.TaskRegistry.names()
      if n.startswith(("crs_redial", "crs_sample_redial"))
  }
  assert names == _NAMES


def test_task_configuration():
  for name in _NAMES:
    task = seqio.get_mixture_or_task(name)
    assert task.output_features == features.DEFAULT_OUTPUT_FEATURES
    assert task.postprocess_fn(b"hi @ up (2009) @") == "hi @ up (2009) @"
    assert task.postprocess_fn(
        b"x", example={"target_movies": [b"up (2009)"]}, is_target=True
    ) == {"text": "x", "target_movies": ["up (2009)"]}
    assert task.source.splits == ("train", "validation", "test")
    config = "sample" if name.startswith("crs_sample") else "full"
    assert task.source.tfds_dataset.name == f"crs_redial/{config}:1.0.0"
    assert not any(k.startswith("decoder_") for k in task.output_features)


def _raw_example():
  return {
      "context": "[Assistant] Hi [User] I liked @ Amélie (2001) @",
      "response": "Try @ Heat (1995) @",
      "conversation_id": "9",
      "turn_index": 2,
      "seeker_movies": ["Amélie (2001)"],
      "recommender_movies": ["Heat (1995)"],
      "target_movies": ["Heat (1995)"],
      "target_movies_repeated": tf.constant([], tf.string),
      "context_movies": ["Amélie (2001)"],
  }


@pytest.mark.parametrize(
    "name,inputs,targets,target_movies",
    [
        (
            "crs_redial_v001",
            (
                "redial conversation: [assistant] hi [user] i liked @ amélie"
                " (2001) @"
            ),
            "try @ heat (1995) @",
            [b"heat (1995)"],
        ),
        (
            "crs_redial_cased_v001",
            (
                "redial conversation: [Assistant] Hi [User] I liked @ Amélie"
                " (2001) @"
            ),
            "Try @ Heat (1995) @",
            [b"Heat (1995)"],
        ),
    ],
)
def test_literal_example_through_registered_pipeline(
    name, inputs, targets, target_movies
):
  task = seqio.get_mixture_or_task(name)
  ds = tf.data.Dataset.from_tensors(_raw_example())
  ds = task.preprocess_precache(ds)
  ds = task.preprocess_postcache(ds, sequence_length=_LENGTHS)
  (ex,) = list(ds.as_numpy_iterator())
  vocab = features.get_vocabulary()
  assert ex["inputs_pretokenized"].decode() == inputs
  assert ex["targets_pretokenized"].decode() == targets
  assert ex["inputs"].tolist() == vocab.encode(inputs) + [1]
  assert ex["targets"].tolist() == vocab.encode(targets) + [1]
  assert ex["target_movies"].tolist() == target_movies
  assert ex["conversation_id"] == b"9"
  assert ex["turn_index"] == 2


@pytest.mark.parametrize(
    "name,inputs,targets",
    [
        # v001: the text as parsed.
        ("crs_redial_v001",
         "redial conversation: [user] i liked @ amélie (2001) @ , it 's "
         "( very ) good", "try @ heat (1995) @ . or `` up '' - it 's fun"),
        # v002: T5-CR's fix_spacing, then lower-casing.
        ("crs_redial_v002",
         "redial conversation: [user] i liked @ amélie (2001) @, it's "
         "(very) good", "try @ heat (1995) @. or \"up\"-it's fun"),
        ("crs_redial_cased_v002",
         "redial conversation: [User] I liked @ Amélie (2001) @, it's "
         "(very) good", "Try @ Heat (1995) @. or \"up\"-it's fun"),
    ],
)
def test_v002_applies_the_authors_fix_spacing(name, inputs, targets):
  raw = dict(_raw_example(),
             context="[User] I liked @ Amélie (2001) @ , it 's ( very ) good",
             response="Try @ Heat (1995) @ . or `` up '' - it 's fun")
  task = seqio.get_mixture_or_task(name)
  ds = task.preprocess_precache(tf.data.Dataset.from_tensors(raw))
  ds = task.preprocess_postcache(ds, sequence_length=_LENGTHS)
  (ex,) = list(ds.as_numpy_iterator())
  assert ex["inputs_pretokenized"].decode() == inputs
  assert ex["targets_pretokenized"].decode() == targets
  assert ex["target_movies"].tolist() in ([b"heat (1995)"], [b"Heat (1995)"])


@pytest.fixture(name="sample_test_examples", scope="module")
def _sample_test_examples(tfds_dir):
  """`{(conversation_id, turn_index): example}` of crs_sample_redial test."""
  del tfds_dir
  task = seqio.get_mixture_or_task("crs_sample_redial_v001")
  ds = task.get_dataset(sequence_length=_LENGTHS, split="test", shuffle=False)
  return {
      (ex["conversation_id"].decode(), int(ex["turn_index"])): ex
      for ex in ds.as_numpy_iterator()
  }


# Turns of dialogue 20001: 0 seeker (204171), 1 recommender (204172), 2
# seeker (204173 and 204174 merged), 3 recommender (204175). Ids become their
# movieMentions titles with double spaces collapsed ("American Pie " has no
# year).
SAMPLE_INPUTS = (
    "redial conversation: [user] hi i am looking for a movie like "
    "@ super troopers (2001) @ [assistant] you should watch "
    "@ police academy (1984) @ [user] is that a great one? i have never "
    "seen it. i have seen @ american pie @ i mean @ american pie (1999) @"
)
SAMPLE_TARGETS = (
    "yes @ police academy (1984) @ is very funny and so is "
    "@ police academy 2: their first assignment (1985) @"
)


def test_sample_history_and_reply_are_lowercased_text(sample_test_examples):
  ex = sample_test_examples[("20001", 3)]
  assert ex["inputs_pretokenized"].decode() == SAMPLE_INPUTS
  assert ex["targets_pretokenized"].decode() == SAMPLE_TARGETS


def test_sample_inputs_are_tokenized_with_eos(sample_test_examples):
  ex = sample_test_examples[("20001", 3)]
  vocab = features.get_vocabulary()
  assert ex["inputs"].tolist() == vocab.encode(SAMPLE_INPUTS) + [1]


def test_sample_target_and_context_movies(sample_test_examples):
  ex = sample_test_examples[("20001", 3)]
  assert ex["target_movies"].tolist() == [
      b"police academy (1984)",
      b"police academy 2: their first assignment (1985)",
  ]
  assert ex["target_movies_repeated"].tolist() == [b"police academy (1984)"]
  # Most recent first.
  assert ex["context_movies"].tolist() == [
      b"american pie (1999)",
      b"american pie",
      b"police academy (1984)",
      b"super troopers (2001)",
  ]


def test_sample_questionnaire_movies_initiator_wins(sample_test_examples):
  ex = sample_test_examples[("20001", 3)]
  # movieMentions order; initiatorQuestions win (101794: 0 = seeker).
  assert ex["seeker_movies"].tolist() == [
      b"super troopers (2001)",
      b"american pie (1999)",
      b"american pie",
      b"lethal weapon (1987)",
  ]
  assert ex["recommender_movies"].tolist() == [
      b"beverly hills cop (1984)",
      b"police academy (1984)",
      b"48 hrs. (1982)",
      b"police academy 2: their first assignment (1985)",
  ]


def test_sample_one_example_per_recommender_turn(sample_test_examples):
  # Per-dialogue example counts equal the independent turn count.
  expected = _count_recommender_turns(
      os.path.join(redial_builder.SAMPLE_DIR, "test_data.jsonl")
  )
  got = {}
  for cid, _ in sample_test_examples:
    got[cid] = got.get(cid, 0) + 1
  assert got == {k: v for k, v in expected.items() if v}


def test_sample_split_sizes(tfds_dir):
  del tfds_dir
  task = seqio.get_mixture_or_task("crs_sample_redial_cased_v001")
  sizes = {
      split: task.num_input_examples(split)
      for split in ("train", "validation", "test")
  }
  train_turns = _count_recommender_turns(
      os.path.join(redial_builder.SAMPLE_DIR, "train_data.jsonl")
  )
  validation = sum(
      n
      for cid, n in train_turns.items()
      if redial_utils.is_validation(cid, seed=redial_builder.SEED)
  )
  test = sum(
      _count_recommender_turns(
          os.path.join(redial_builder.SAMPLE_DIR, "test_data.jsonl")
      ).values()
  )
  assert sizes == {
      "train": sum(train_turns.values()) - validation,
      "validation": validation,
      "test": test,
  }
  # The numbers recorded in the builder docstring.
  assert sizes == {"train": 1191, "validation": 72, "test": 284}


def test_cased_and_lowercased_tasks_share_examples(tfds_dir):
  del tfds_dir
  get = lambda name: seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=_LENGTHS, split="validation", shuffle=False
  )
  cased = list(get("crs_sample_redial_cased_v001").as_numpy_iterator())
  lower = list(get("crs_sample_redial_v001").as_numpy_iterator())
  assert len(cased) == len(lower) == 72
  for c, l in zip(cased, lower):
    assert c["targets_pretokenized"].decode().lower() == (
        l["targets_pretokenized"].decode()
    )
    assert [t.decode().lower() for t in c["target_movies"]] == [
        t.decode() for t in l["target_movies"]
    ]
    # Every lower-cased target title appears in the lower-cased target text.
    for title in l["target_movies"]:
      assert f"@ {title.decode()} @" in l["targets_pretokenized"].decode()


def test_sample_sources_are_the_documented_subset():
  with open(
      os.path.join(redial_builder.SAMPLE_DIR, "train_data.jsonl"),
      encoding="utf-8",
  ) as f:
    assert sum(1 for _ in f) == 200
  with open(
      os.path.join(redial_builder.SAMPLE_DIR, "test_data.jsonl"),
      encoding="utf-8",
  ) as f:
    assert sum(1 for _ in f) == 50
  for name in ("ATTRIBUTION.md", "LICENSE"):
    with open(
        os.path.join(redial_builder.SAMPLE_DIR, name), encoding="utf-8"
    ) as f:
      text = f.read()
    assert "CC BY 4.0" in text or "Attribution 4.0" in text
    assert "Towards Deep Conversational Recommendations" in text


def test_prepare_full_from_manual_dir(tmp_path):
  """`full` reads manual_dir (train_partial.jsonl accepted for train)."""
  testdata = os.path.join(
      os.path.dirname(os.path.dirname(__file__)), "testdata"
  )
  manual = tmp_path / "manual"
  manual.mkdir()
  with open(os.path.join(testdata, "redial_quirks.jsonl"), "rb") as f:
    quirks = f.read()
  (manual / "train_partial.jsonl").write_bytes(quirks)
  (manual / "test_data.jsonl").write_bytes(quirks)
  with open(os.path.join(testdata, "redial_movies.csv"), "rb") as f:
    (manual / "movies_with_mentions.csv").write_bytes(f.read())
  sizes = redial_builder.prepare_redial(
      str(tmp_path / "tfds"), manual_dir=str(manual), config="full"
  )
  # Dialogues 1001 and 1002 give 2 examples each (malformed lines skipped);
  # with seed 42, 1002 hashes to validation.
  assert [redial_utils.is_validation(c) for c in ("1001", "1002")] == [
      False,
      True,
  ]
  assert sizes == {"train": 2, "validation": 2, "test": 4}


def test_task_metric_fns_score_gold_replies_perfectly(tfds_dir):
  """seqio's evaluation path: postprocess targets, run the task metric_fns."""
  del tfds_dir
  task = seqio.get_mixture_or_task("crs_sample_redial_v001")
  examples = list(task.get_dataset(
      sequence_length=_LENGTHS, split="test", shuffle=False
  ).as_numpy_iterator())
  targets = [task.postprocess_fn(ex["targets_pretokenized"], example=ex,
                                 is_target=True) for ex in examples]
  gold = [task.postprocess_fn(ex["targets_pretokenized"], example=ex,
                              is_target=False) for ex in examples]
  metrics = {}
  for fn in task.predict_metric_fns:
    metrics.update(fn(targets, gold))
  assert metrics["rec/e2e_recall"] == 100.0
  assert metrics["rec/e2e_num_recommendations"] > 0
  assert metrics["gen/bleu4"] == pytest.approx(100.0)
  # A reply without titles recommends nothing: recall has no denominator.
  empty = {}
  for fn in task.predict_metric_fns:
    empty.update(fn(targets, ["ok"] * len(targets)))
  assert empty["rec/e2e_num_recommendations"] == 0
  assert empty["gen/bleu4"] < 5.0
