"""Tests for train/summaries.py."""

import pytest

from train import summaries


def test_scalars_round_trip_through_event_files(tmp_path):
  writer = summaries.MetricWriter(str(tmp_path), "training_eval/task_a")
  writer.write_scalars(3, {"loss": 1.5, "timing/seqs_per_second": 20.0})
  writer.write_scalars(6, {"loss": 0.25})
  writer.close()
  scalars = summaries.read_scalars(str(tmp_path / "training_eval" / "task_a"))
  assert scalars == {"loss": {3: 1.5, 6: 0.25},
                     "timing/seqs_per_second": {3: 20.0}}


def test_progress_line():
  line = summaries.progress_line(
      step=120, total_steps=1000, loss=3.21404, tokens_per_second=12345.4,
      seconds_per_step=0.5, learning_rate=0.003)
  # ETA: 880 steps x 0.5 s = 440 s = 0:07:20.
  assert line == ("step 120/1000 loss 3.2140 lr 3.0e-03 tokens/s 12,345 "
                  "ETA 0:07:20")


@pytest.mark.parametrize("seconds,text", [(0, "0:00:00"), (59.6, "0:01:00"),
                                          (3725, "1:02:05"), (-3, "0:00:00")])
def test_format_duration(seconds, text):
  assert summaries.format_duration(seconds) == text


def test_sparkline_maps_min_to_lowest_and_max_to_highest():
  assert summaries.sparkline([4.0, 3.0, 2.0, 1.0]) == "█▅▃▁"
  assert summaries.sparkline([1.0, 1.0]) == "▁▁"
  assert summaries.sparkline([]) == ""
  # Bucket means: [5, 3] -> high, low.
  assert summaries.sparkline([6.0, 4.0, 3.0, 3.0], width=2) == "█▁"


def test_loss_curve_summary():
  text = summaries.loss_curve_summary([3.0, 2.0, 2.5])
  assert text.startswith(
      "loss first 3.0000  last 2.5000  min 2.0000 (step 2)  over 3 steps")
  assert summaries.loss_curve_summary([]) == "no training steps were run"


def test_loss_curve_summary_uses_global_steps_after_a_resume():
  # Resumed at step 100: losses of steps 101..150, the minimum at step 146.
  losses = [5.0] * 50
  losses[45] = 1.0
  text = summaries.loss_curve_summary(losses, first_step=101)
  assert "min 1.0000 (step 146)  over 50 steps" in text
