"""Tests for eval/evaluation.py with a scripted fake model on a toy task
and a recording model on the bundled ReDial sample task."""

import collections
import json
import os
import re
import threading

import numpy as np
import pytest
import sacrebleu
import seqio
import tensorflow as tf

from crs_tasks import features
from crs_tasks import postprocessors
from eval import evaluation
from eval import ranking
from eval.probes import probe_lib
from train import distributed
from train import inference
from train import model_inputs

TASK = "test_eval_toy_redial_v001"
TASK2 = "test_eval_toy_redial_copy_v001"
VOCAB = features.get_vocabulary()
EXAMPLES = [
    {"inputs": "redial conversation: [user] i like @ heat (1995) @",
     "targets": "try @ ronin (1998) @", "target_movies": ["ronin (1998)"],
     "context_movies": ["heat (1995)"], "seeker_movies": ["heat (1995)"],
     "recommender_movies": ["ronin (1998)"], "conversation_id": "c1",
     "turn_index": 1},
    {"inputs": "redial conversation: [user] any comedy?",
     "targets": "@ up (2009) @ or @ heat (1995) @",
     "target_movies": ["up (2009)", "heat (1995)"],
     "context_movies": ["ronin (1998)", "heat (1995)"],
     "seeker_movies": ["heat (1995)"],
     "recommender_movies": ["ronin (1998)", "up (2009)"],
     "conversation_id": "c1", "turn_index": 3},
    {"inputs": "redial conversation: [user] scary ones",
     "targets": "@ alien (1979) @", "target_movies": ["alien (1979)"],
     "context_movies": [], "seeker_movies": [],
     "recommender_movies": ["alien (1979)"], "conversation_id": "c2",
     "turn_index": 1},
]
# What the fake model answers to each input: right, right, wrong.
REPLIES = {
    EXAMPLES[0]["inputs"]: "try @ ronin (1998) @",
    EXAMPLES[1]["inputs"]: "@ heat (1995) @ is funny",
    EXAMPLES[2]["inputs"]: "@ up (2009) @",
}


def _recall_at_1(targets, predictions):
  """First generated title among the target movies (a task metric_fn)."""
  hits = []
  for target, prediction in zip(targets, predictions):
    titles = [t.strip() for t in re.findall(r"@([^@]+)@", prediction)]
    hits.append(bool(titles) and titles[0] in target["target_movies"])
  return {"rec/recall@1": 100.0 * np.mean(hits)}


def _dataset_fn(split, shuffle_files, seed=None):
  del split, shuffle_files, seed
  return tf.data.Dataset.from_generator(
      lambda: iter(EXAMPLES),
      output_signature={
          "inputs": tf.TensorSpec([], tf.string),
          "targets": tf.TensorSpec([], tf.string),
          "target_movies": tf.TensorSpec([None], tf.string),
          "context_movies": tf.TensorSpec([None], tf.string),
          "seeker_movies": tf.TensorSpec([None], tf.string),
          "recommender_movies": tf.TensorSpec([None], tf.string),
          "conversation_id": tf.TensorSpec([], tf.string),
          "turn_index": tf.TensorSpec([], tf.int32),
      })


@pytest.fixture(scope="module", autouse=True)
def toy_tasks():
  for name in (TASK, TASK2):
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(_dataset_fn, splits=["test"]),
        preprocessors=[seqio.preprocessors.tokenize,
                       seqio.preprocessors.append_eos_after_trim],
        output_features=features.DEFAULT_OUTPUT_FEATURES,
        postprocess_fn=postprocessors.redial_postprocess,
        metric_fns=[_recall_at_1])
  yield
  for name in (TASK, TASK2):
    seqio.TaskRegistry.remove(name)


def _pad(rows, length):
  out = np.zeros((len(rows), length), np.int32)
  for i, row in enumerate(rows):
    out[i, :len(row[:length])] = row[:length]
  return out


class FakeModel:
  """Answers from REPLIES; scores = -(number of target tokens)."""

  input_vocabulary = output_vocabulary = VOCAB

  def __init__(self):
    self.predict_kwargs = []

  def predict_batch(self, params, batch, **kwargs):
    assert params == "params"
    self.predict_kwargs.append(kwargs)
    length = kwargs["max_decode_length"]
    rows = []
    for enc in np.asarray(batch["encoder_input_tokens"]):
      text = inference.decode_tokens(VOCAB, enc)
      rows.append(list(VOCAB.encode(REPLIES[text])) + [1])
    return _pad(rows, length)

  def score_batch(self, params, batch):
    del params
    return -np.asarray(batch["decoder_loss_weights"]).sum(-1).astype(float)

  def score_candidates(self, params, encoder_input_tokens, candidate_tokens):
    del params
    # 1 for the reply "@ heat (1995) @", 0 for the others, whatever the context.
    heat = list(VOCAB.encode("@ heat (1995) @")) + [1]
    scores = [float([t for t in row if t > 0] == heat)
              for row in np.asarray(candidate_tokens)]
    return np.tile(scores, (len(encoder_input_tokens), 1))


def _toy_probe():
  """One pair: the short reply is correct, the long one its negative."""
  tokens = lambda text: list(VOCAB.encode(text)) + [1]
  return probe_lib.ProbeSet(
      "toy", ({"inputs": tokens("a"), "targets": tokens("short"),
               "pair_id": "toy/0"},),
      (tuple(tokens("a much longer target text")),))


def test_ranking_examples_ranks_only_the_first_examples(tmp_path):
  movie_csv = tmp_path / "movies_with_mentions.csv"
  movie_csv.write_text("movieId,movieName,nbMentions\n1,Heat (1995),5\n"
                       "2,Ronin (1998),1\n3,Up (2009),2\n4,Alien (1979),3\n")
  movies = ranking.load_movie_list(str(movie_csv))
  metrics = evaluation.evaluate(
      model=FakeModel(), params="params", vocabulary=VOCAB, tasks=[TASK],
      output_dir=str(tmp_path / "out"), num_examples=3, task_feature_lengths={"inputs": 32, "targets": 16},
       batch_size=2, ranking_examples=2,
      ranking_fns=ranking.make_protocols(movies, ks=(1,)))
  # Examples 1 and 2 mention ronin; up and heat: 3 samples (alien is in the
  # third example, not ranked). Generation still sees all three.
  assert metrics["rank/num_samples"] == 3
  assert metrics["rec/e2e_num_recommendations"] == 2


def _movie_list(tmp_path):
  movie_csv = tmp_path / "movies_with_mentions.csv"
  movie_csv.write_text("movieId,movieName,nbMentions\n1,Heat (1995),5\n"
                       "2,Ronin (1998),1\n3,Up (2009),2\n4,Alien (1979),3\n")
  return ranking.load_movie_list(str(movie_csv))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  """One `evaluate` run of the fake model: (metrics, model, tmp dir)."""
  tmp_path = tmp_path_factory.mktemp("evaluate")
  model = FakeModel()
  metrics = evaluation.evaluate(
      model=model, params="params", vocabulary=VOCAB, tasks=[TASK],
      output_dir=str(tmp_path / "eval" / "7"), step=7, num_examples=3,
      decode=inference.DecodeConfig(method="beam", num_beams=3),
      task_feature_lengths={"inputs": 32, "targets": 16},  batch_size=2,
      ranking_fns=ranking.make_protocols(_movie_list(tmp_path), ks=(1, 10)),
      probes={"toy": _toy_probe()},
      summary_dir=str(tmp_path / "eval"))
  return metrics, model, tmp_path


def test_task_metric_fns_see_postprocessed_predictions(evaluated):
  metrics, _, _ = evaluated
  # recall@1: examples 1 and 2 right, 3 wrong -> 66.67.
  assert metrics["rec/recall@1"] == pytest.approx(200 / 3)


def test_standard_protocol_ranks_each_target_movie(evaluated):
  metrics, _, _ = evaluated
  # Heat scores 1, the rest 0; ties count against the label. Samples ronin,
  # up, heat, alien: only heat is ranked 1st -> 25; all four candidates are
  # within 10 -> 100.
  assert metrics["rank/recall@1"] == 25.0
  assert metrics["rank/recall@10"] == 100.0
  assert metrics["rank/num_samples"] == 4
  assert metrics["rank/num_turns"] == 3


def test_dedup_protocol_drops_and_excludes_context_movies(evaluated):
  metrics, _, _ = evaluated
  # Example 2 drops heat (in its context) and excludes ronin/heat, so up
  # ties with alien (rank 2); nothing at rank 1 -> 0.
  assert metrics["rank_dedup/recall@1"] == 0.0
  assert metrics["rank_dedup/num_dropped"] == 1
  assert metrics["rank_dedup/num_samples"] == 3


def test_predictions_carry_the_label_ranks_behind_recall(evaluated):
  """Per ranked turn, each protocol's {target title: rank} (by hand: heat
  scores 1, every other candidate 0, ties count against the label)."""
  _, _, tmp_path = evaluated
  with open(tmp_path / "eval" / "7" / "predictions.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert [r["label_ranks"] for r in rows] == [
      {"rank": {"ronin (1998)": 4},
       "rank_dedup": {"ronin (1998)": 3}},          # heat excluded.
      {"rank": {"up (2009)": 4, "heat (1995)": 1},
       "rank_dedup": {"up (2009)": 2}},             # ronin, heat excluded.
      {"rank": {"alien (1979)": 4}, "rank_dedup": {"alien (1979)": 4}}]


def test_probes_score_with_the_model(evaluated):
  metrics, _, tmp_path = evaluated
  # -(target tokens + EOS): the short target scores higher.
  assert metrics["probe/toy/accuracy"] == 100.0
  assert metrics["probe/toy/num_pairs"] == 1
  with open(tmp_path / "eval" / "7" / "probe_pairs.jsonl") as f:
    row = json.loads(f.readline())
  assert row["pair_id"] == "toy/0" and row["correct"]
  assert row["positive"] == -(len(VOCAB.encode("short")) + 1)


def test_redial_metric_fns_e2e_recall_and_distinct(evaluated):
  metrics, _, _ = evaluated
  # Replies recommend {ronin} (hit), {} (heat is the seeker's) and {up}
  # (miss) -> 1 hit of 2 = 50.
  assert metrics["rec/e2e_recall"] == 50.0
  assert metrics["rec/e2e_num_recommendations"] == 2
  # Distinct-1: 10 distinct of 15 whitespace tokens over 3 replies.
  assert metrics["gen/distinct1_ratio"] == pytest.approx(10 / 15)
  assert metrics["gen/distinct1_per_response"] == pytest.approx(10 / 3)


def test_bleu_equals_sacrebleu_on_the_replies(evaluated):
  metrics, _, _ = evaluated
  reference = sacrebleu.corpus_bleu(
      [REPLIES[ex["inputs"]] for ex in EXAMPLES],
      [[ex["targets"] for ex in EXAMPLES]], smooth_method="exp",
      smooth_value=0.0, tokenize="intl")
  assert metrics["gen/bleu4"] == pytest.approx(reference.score)


def test_target_logprob_is_the_mean_score_batch(evaluated):
  metrics, _, _ = evaluated
  expected = -np.mean([len(VOCAB.encode(ex["targets"])) + 1
                       for ex in EXAMPLES])
  assert metrics["gen/target_logprob"] == pytest.approx(expected)


def test_decoding_settings_reach_predict_batch(evaluated):
  _, model, _ = evaluated
  # 3 examples in batches of 2.
  assert len(model.predict_kwargs) == 2
  assert model.predict_kwargs[0]["decode_method"] == "beam"
  assert model.predict_kwargs[0]["num_beams"] == 3
  assert model.predict_kwargs[0]["max_decode_length"] == 16


def test_metrics_json_and_predictions_jsonl(evaluated):
  metrics, _, tmp_path = evaluated
  out = tmp_path / "eval" / "7"
  with open(out / "metrics.json") as f:
    saved = json.load(f)
  assert saved["step"] == 7 and saved["metrics"] == pytest.approx(metrics)
  assert saved["num_examples"] == {TASK: 3}
  assert saved["decoding"]["method"] == "beam"
  with open(out / "predictions.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert [r["prediction"] for r in rows] == [
      REPLIES[ex["inputs"]] for ex in EXAMPLES]
  assert rows[1]["conversation_id"] == "c1" and rows[1]["turn_index"] == 3
  assert rows[1]["target_movies"] == ["up (2009)", "heat (1995)"]
  assert rows[0]["targets"] == EXAMPLES[0]["targets"]
  assert not os.path.exists(out / "predictions.jsonl.tmp")


def test_tensorboard_scalars_at_the_step(evaluated):
  _, _, tmp_path = evaluated
  event_files = tf.io.gfile.glob(str(tmp_path / "eval" / "events.out.*"))
  assert event_files
  tags = {}
  for event in tf.compat.v1.train.summary_iterator(event_files[0]):
    for value in event.summary.value:
      tags[value.tag] = (event.step,
                         float(tf.make_ndarray(value.tensor)))
  assert tags["rec/recall@1"] == (7, pytest.approx(200 / 3))
  assert "probe/toy/accuracy" in tags


def test_prints_the_metrics_path_and_shows_progress(tmp_path, capsys):
  evaluation.evaluate(
      model=FakeModel(), params="params", vocabulary=VOCAB, tasks=[TASK],
      output_dir=str(tmp_path / "out"), num_examples=2, task_feature_lengths={"inputs": 32, "targets": 16},
       batch_size=2, score_targets=False,
      ranking_fns=ranking.make_protocols(_movie_list(tmp_path)),
      probes={"toy": _toy_probe()})
  captured = capsys.readouterr()
  assert f"metrics: {tmp_path / 'out' / 'metrics.json'}" in captured.out
  # tqdm bars (with an ETA) for generation, candidate scoring (in rows: the
  # slow pass) and the probe; one ranking pass serves both protocols.
  for label in (f"generate {TASK}:", f"rank {TASK}:", "row/s", "probe toy:"):
    assert label in captured.err, captured.err
  assert "rank_dedup" not in captured.err


class RecordingModel:
  """Records the encoder rows it is given; decodes and scores zeros."""

  input_vocabulary = output_vocabulary = VOCAB

  def __init__(self):
    self.generated, self.ranked = [], []

  def predict_batch(self, params, batch, **kwargs):
    del params
    self.generated += [tuple(r) for r in batch["encoder_input_tokens"]]
    return np.zeros((len(batch["encoder_input_tokens"]),
                     kwargs["max_decode_length"]), np.int32)

  def score_batch(self, params, batch):
    del params
    return np.zeros(len(batch["encoder_input_tokens"]), np.float32)

  def score_candidates(self, params, encoder_input_tokens, candidate_tokens):
    del params
    self.ranked += [tuple(r) for r in np.asarray(encoder_input_tokens)]
    return np.zeros((len(encoder_input_tokens), len(candidate_tokens)),
                    np.float32)


def test_ranking_scores_the_encoder_rows_generation_decodes(tmp_path):
  """Histories longer than the inputs length: both keep prefix + recent."""
  import crs_tasks  # pylint: disable=g-import-not-at-top,unused-import
  task, length = "crs_sample_redial_v001", 48
  examples = model_inputs.task_examples(
      task, split="test", task_feature_lengths={"inputs": length,
                                                "targets": 16},
      num_examples=12)
  long_ones = [ex for ex in examples
               if len(VOCAB.encode(ex["inputs_pretokenized"])) >= length
               and ex["target_movies"] and ex["turn_index"] > 0]
  assert long_ones, "the sample has no long history with a movie"
  movie_csv = tmp_path / "movies_with_mentions.csv"
  titles = sorted({t for ex in examples for t in ex["target_movies"]})
  movie_csv.write_text("movieId,movieName,nbMentions\n" + "".join(
      f'{i},"{t}",1\n' for i, t in enumerate(titles)))
  model = RecordingModel()
  evaluation.evaluate(
      model=model, params=None, vocabulary=VOCAB, tasks=[task],
      output_dir=str(tmp_path / "out"), num_examples=12,
      task_feature_lengths={"inputs": length, "targets": 16},  batch_size=4,
      score_targets=False, redial_metric_fns=(),
      ranking_fns=ranking.make_protocols(
          ranking.load_movie_list(str(movie_csv))))
  assert model.ranked and set(model.ranked) <= set(model.generated)
  prefix = list(VOCAB.encode("redial conversation:"))
  for ex in long_ones:
    full = list(VOCAB.encode(ex["inputs_pretokenized"]))
    # Prefix + the most recent tokens + EOS, as training saw it.
    recent = prefix + full[len(full) - (length - 1 - len(prefix)):] + [1]
    assert len(recent) == length
    assert tuple(recent) in model.ranked
    assert tuple(full[:length - 1] + [1]) not in model.ranked


def test_evaluate_num_examples_and_task_prefixes(tmp_path):
  kwargs = dict(model=FakeModel(), params="params", vocabulary=VOCAB,
                output_dir=str(tmp_path), num_examples=1, task_feature_lengths={"inputs": 32, "targets": 16},
                 batch_size=4, score_targets=False,
                redial_metric_fns=())
  # A repeated name is evaluated once, without prefix; example 1 is right.
  assert evaluation.evaluate(tasks=[TASK, TASK], **kwargs) == {
      "rec/recall@1": 100.0}
  # Two tasks: every metric is prefixed with its task.
  assert evaluation.evaluate(tasks=[TASK, TASK2], **kwargs) == {
      f"{TASK}/rec/recall@1": 100.0, f"{TASK2}/rec/recall@1": 100.0}


def test_decode_config_rejects_unknown_method():
  with pytest.raises(ValueError, match="got 'topk'"):
    inference.DecodeConfig(method="topk")


def test_expand_tasks_unknown_name():
  with pytest.raises(ValueError, match="unknown task or mixture 'nope_v001'"):
    evaluation.expand_tasks(["nope_v001"])


def test_process_batches_split_whole_batches():
  for n, batch, processes in [(10, 4, 2), (10, 3, 2), (2, 4, 3), (0, 2, 2),
                              (17, 2, 4)]:
    parts = [evaluation.process_batches(n, batch, i, processes)
             for i in range(processes)]
    # Contiguous, in order, covering 0..n; each part starts on a batch.
    assert [p.start for p in parts[1:]] == [p.stop for p in parts[:-1]]
    assert (parts[0].start, parts[-1].stop) == (0, n)
    assert all(p.start % batch == 0 for p in parts if p.stop > p.start)
    sizes = [-(-(p.stop - p.start) // batch) for p in parts]
    assert max(sizes) - min(sizes) <= 1, (n, batch, processes, sizes)


class _ThreadProcesses:
  """Simulated processes, one thread each: `distributed`'s process index,
  `is_primary` and `allgather_objects` (a barrier) per thread."""

  def __init__(self, count, monkeypatch):
    self.count, self.local = count, threading.local()
    self.barrier, self.slots = threading.Barrier(count), [None] * count
    original = distributed.process_slice
    monkeypatch.setattr(
        distributed, "process_slice", lambda n, i=None, c=None: original(
            n, self.index() if i is None else i, c or count))
    monkeypatch.setattr(distributed, "is_primary", lambda: self.index() == 0)
    monkeypatch.setattr(distributed, "allgather_objects", self.allgather)

  def index(self):
    return self.local.index

  def allgather(self, obj):
    self.slots[self.index()] = obj
    self.barrier.wait(timeout=60)
    out = list(self.slots)
    self.barrier.wait(timeout=60)
    return out

  def run(self, fn):
    results, failures = [None] * self.count, []

    def target(i):
      self.local.index = i
      try:
        results[i] = fn(i)
      except BaseException as e:  # pylint: disable=broad-except
        failures.append(e)
        self.barrier.abort()

    threads = [threading.Thread(target=target, args=(i,))
               for i in range(self.count)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(timeout=120)
    if failures:
      raise failures[0]
    return results


class _CountingModel(FakeModel):
  """FakeModel that counts the rows each simulated process computes."""

  def __init__(self, processes=None):
    super().__init__()
    self.processes, self.rows = processes, collections.Counter()

  def _count(self, kind, n):
    self.rows[(self.processes.index() if self.processes else 0, kind)] += n

  def predict_batch(self, params, batch, **kwargs):
    self._count("predict", len(batch["encoder_input_tokens"]))
    return super().predict_batch(params, batch, **kwargs)

  def score_batch(self, params, batch):
    self._count("score", len(batch["encoder_input_tokens"]))
    return super().score_batch(params, batch)

  def score_candidates(self, params, encoder_input_tokens, candidate_tokens):
    self._count("rank", len(encoder_input_tokens))
    return super().score_candidates(params, encoder_input_tokens,
                                    candidate_tokens)


def test_two_processes_split_the_work_and_get_one_process_metrics(
    tmp_path, monkeypatch):
  movies = _movie_list(tmp_path)

  def run(model, out):
    metrics = evaluation.evaluate(
        model=model, params="params", vocabulary=VOCAB, tasks=[TASK],
        output_dir=str(out), num_examples=3, task_feature_lengths={"inputs": 32, "targets": 16},
         batch_size=1,
        ranking_fns=ranking.make_protocols(movies, ks=(1, 10)),
        probes={"toy": _toy_probe()})
    path = out / "predictions.jsonl"
    return metrics, path.read_text() if path.exists() else None

  single = _CountingModel()
  expected = run(single, tmp_path / "one")
  processes = _ThreadProcesses(2, monkeypatch)
  model = _CountingModel(processes)
  results = processes.run(lambda i: run(model, tmp_path / f"two{i}"))
  # Every process gets the metrics; process 0 alone writes the files.
  assert results[0] == expected and results[1][0] == expected[0]
  assert not (tmp_path / "two1" / "predictions.jsonl").exists()
  # 3 examples in batches of 1: process 0 decodes and scores 2, process 1
  # one; the 3 ranked rows likewise; the probe's 2 pairs: one each.
  assert dict(model.rows) == {
      (0, "predict"): 2, (1, "predict"): 1, (0, "rank"): 2, (1, "rank"): 1,
      (0, "score"): 2 + 1, (1, "score"): 1 + 1}
  assert single.rows == {(0, "predict"): 3, (0, "rank"): 3, (0, "score"): 5}


def test_features_are_built_once_per_task_and_rows_scored_once(
    tmp_path, monkeypatch):
  """One feature-converter pass for the task's examples (generation,
  target scores and ranked rows) and one for the candidate list; a turn
  ranked by both protocols is one row of the score matrix."""
  calls = []
  original = model_inputs.model_features

  def counting(examples, *args, **kwargs):
    calls.append(len(examples))
    return original(examples, *args, **kwargs)

  monkeypatch.setattr(model_inputs, "model_features", counting)
  model = _CountingModel()
  evaluation.evaluate(
      model=model, params="params", vocabulary=VOCAB, tasks=[TASK],
      output_dir=str(tmp_path), num_examples=3, task_feature_lengths={"inputs": 32, "targets": 16},
       batch_size=4,
      ranking_fns=ranking.make_protocols(_movie_list(tmp_path)))
  assert calls == [3, 4]  # The 3 examples; the 4 candidate replies.
  # 3 distinct ranked turns (both protocols), padded to a batch of 4.
  assert model.rows[(0, "rank")] == 4
