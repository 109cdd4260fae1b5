"""Tests for train/inference.py: decoding settings, token text, scoring."""

import numpy as np
import pytest
import seqio.test_utils

from train import decoding
from train import inference
from train import model_inputs


def test_decode_tokens_stops_at_eos_and_drops_padding():
  vocab = seqio.test_utils.sentencepiece_vocab()
  # 11 = "th", 4 = "e", 1 = EOS; pieces after EOS are ignored.
  assert inference.decode_tokens(vocab, [11, 4, 1, 5, 5]) == "the"
  assert inference.decode_tokens(vocab, [0, 11, 0, 4]) == "the"
  assert inference.decode_tokens(vocab, [1, 11]) == ""


class _ScoringModel:
  """score = (first encoder token) - (candidate length): easy to check."""

  def __init__(self, vocab):
    self.input_vocabulary = self.output_vocabulary = vocab
    self.shapes = []

  def score_candidates(self, params, encoder_input_tokens, candidate_tokens):
    del params
    self.shapes.append((encoder_input_tokens.shape, candidate_tokens.shape))
    length = (candidate_tokens > 0).sum(-1)
    return encoder_input_tokens[:, :1] - length[None, :]


def test_score_candidates_batches_rows_with_a_bar(capsys):
  vocab = seqio.test_utils.sentencepiece_vocab()
  model = _ScoringModel(vocab)
  candidates = ["a", "this is a test cat", "hot"]
  tokens = inference.candidate_tokens(model, candidates, 6)
  lengths = [min(len(vocab.encode(c)) + 1, 6) for c in candidates]
  # Candidates tokenized once, as targets: EOS kept, cut at 6 tokens.
  assert tokens.shape == (3, 6)
  np.testing.assert_array_equal((tokens > 0).sum(-1), lengths)
  rows = np.array([[10, 4, 1, 0], [20, 1, 0, 0], [7, 7, 1, 0]], np.int32)
  scores = inference.score_candidates(model, None, rows, tokens,
                                      batch_size=2, desc="rank toy")
  np.testing.assert_allclose(
      scores, np.array([10, 20, 7])[:, None] - np.array(lengths)[None, :])
  assert scores.dtype == np.float32
  # A batch of 2, then 1 row padded to a power of two (1).
  assert model.shapes == [((2, 4), (3, 6)), ((1, 4), (3, 6))]
  # The bar counts rows, with their rate.
  err = capsys.readouterr().err
  assert "rank toy: 100%" in err and "3/3" in err and "row/s" in err
  assert inference.score_candidates(
      model, None, rows[:0], tokens, progress=False).shape == (0, 3)


def test_candidate_scorer_scores_the_examples_encoder_rows():
  vocab = seqio.test_utils.sentencepiece_vocab()
  model = _ScoringModel(vocab)
  scorer = inference.CandidateScorer(
      model, None, task_feature_lengths={"inputs": 8, "targets": 6},
      batch_size=4)
  examples = [{"inputs": [10, 4, 1]}, {"inputs": [20, 1]}]
  scores = scorer(examples, ["a", "hot"])
  lengths = [len(vocab.encode(c)) + 1 for c in ("a", "hot")]
  np.testing.assert_allclose(
      scores, np.array([10, 20])[:, None] - np.array(lengths)[None, :])
  # Encoder rows at the inputs length, candidates at the targets length.
  assert model.shapes == [((2, 8), (2, 6))]
  # Stateless: the same call scores again.
  np.testing.assert_allclose(scorer(examples, ["a", "hot"]), scores)
  assert len(model.shapes) == 2


def test_score_targets_and_score_features_agree():
  vocab = seqio.test_utils.sentencepiece_vocab()

  class Model:
    input_vocabulary = output_vocabulary = vocab

    def score_batch(self, params, batch):
      del params
      return -batch["decoder_loss_weights"].sum(-1).astype(np.float32)

  examples = [{"inputs": [3, 1], "targets": [5, 6, 1]},
              {"inputs": [4, 1], "targets": [7, 1]},
              {"inputs": [5, 1], "targets": [1]}]
  lengths = {"inputs": 4, "targets": 4}
  scores = inference.score_targets(Model(), None, examples,
                                   task_feature_lengths=lengths, batch_size=2)
  np.testing.assert_allclose(scores, [-3, -2, -1])
  features = model_inputs.model_features(examples, lengths)
  np.testing.assert_allclose(inference.score_features(
      Model(), None, features, batch_size=2), scores)


@pytest.mark.parametrize("method", decoding.DECODE_METHODS)
def test_decode_config_takes_every_decoding_method(method):
  assert inference.DecodeConfig(method=method).method == method


def test_decode_config_names_the_methods_on_a_typo():
  with pytest.raises(ValueError, match="greedy, beam, sample, got 'beams'"):
    inference.DecodeConfig(method="beams")
