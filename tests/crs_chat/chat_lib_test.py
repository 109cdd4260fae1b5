"""Tests for crs_chat/chat_lib.py: the history format, session, commands.

The `catalogue` fixture is in tests/crs_chat/conftest.py; the title matching is
tested in catalogue_test.py.
"""

import io

import pytest
import tensorflow as tf

from crs_tasks import preprocessors
from crs_tasks import redial_utils
from crs_chat import chat_lib


def test_format_history_literal():
  turns = [("user", "Hi!  Any @ Heat (1995) @ fans?"), ("assistant", "yes"),
           ("user", "Cool")]
  assert chat_lib.format_history(turns) == (
      "redial conversation: [user] hi! any @ heat (1995) @ fans? "
      "[assistant] yes [user] cool")
  with pytest.raises(ValueError, match="unknown speaker 'bot'"):
    chat_lib.format_history([("bot", "x")])


def test_format_history_matches_redial_examples():
  dialogue = {
      "conversationId": "7", "initiatorWorkerId": 1, "respondentWorkerId": 2,
      "movieMentions": {"5": "Heat  (1995)", "6": "Ronin (1998)"},
      "messages": [
          {"senderWorkerId": 1, "text": "Hi! I loved @5", "messageId": 1},
          {"senderWorkerId": 2, "text": "try @6", "messageId": 2},
          {"senderWorkerId": 2, "text": "it is  great", "messageId": 3},
          {"senderWorkerId": 1, "text": "ok &quot;cool&quot;", "messageId": 4},
          {"senderWorkerId": 2, "text": "bye", "messageId": 5},
      ],
  }
  example = redial_utils.dialogue_to_examples(dialogue)[-1]
  # The registered lower-cased ReDial task's text preprocessing.
  ds = tf.data.Dataset.from_tensors(
      {"context": example["context"], "response": example["response"]})
  ds = preprocessors.redial_to_text(ds)
  ds = preprocessors.lowercase(ds, features=("inputs", "targets"))
  task_inputs = next(ds.as_numpy_iterator())["inputs"].decode()
  turns = [("user", "Hi! I loved @ Heat (1995) @"),
           ("assistant", "try @ Ronin (1998) @ it is great"),
           ("user", 'ok "cool"')]
  assert chat_lib.format_history(turns) == task_inputs
  assert task_inputs.startswith('redial conversation: [user] hi! i loved @ '
                                'heat (1995) @ [assistant] try')


def test_fit_history_drops_oldest_turns():
  turns = [("user", "a " * 10), ("assistant", "b"), ("user", "c")]
  fits = lambda text: len(text.split()) <= 6
  assert chat_lib.fit_history(turns, fits) == (
      "redial conversation: [assistant] b [user] c")
  assert chat_lib.fit_history(turns, lambda t: False) == (
      "redial conversation: [user] c")


def test_session_lists_only_catalogue_films(catalogue):
  session = chat_lib.ChatSession(
      catalogue, lambda text: "try @ the a classics (1983) @ or @ up (2009) @")
  out, _ = chat_lib.handle_line(session, "hi")
  assert out == [
      "assistant> try the a classics (1983) or Up (2009)",
      "  recommended: Up (2009)",
      "  (not in the catalogue: the a classics (1983))",
  ]


def test_session_notes_titles_left_unmatched(catalogue):
  session = chat_lib.ChatSession(catalogue, lambda text: "ok")
  out, _ = chat_lib.handle_line(session, "i loved halloween")
  assert out[0] == ('  (note: "halloween" could be Halloween (2007) or '
                    'Halloween (1978): add the year, e.g. "halloween 2007")')


def test_session_and_commands(catalogue):
  seen = []

  def generate(model_input):
    seen.append(model_input)
    return "you might like @ heat (1995) @"

  session = chat_lib.ChatSession(catalogue, generate)
  out, quit_ = chat_lib.handle_line(session, "I loved The Matrix")
  assert not quit_
  assert out == ["  (matched: The Matrix (1999))",
                 "assistant> you might like Heat (1995)",
                 "  recommended: Heat (1995)"]
  chat_lib.handle_line(session, "thanks")
  assert seen == [
      "redial conversation: [user] i loved @ the matrix (1999) @",
      "redial conversation: [user] i loved @ the matrix (1999) @ "
      "[assistant] you might like @ heat (1995) @ [user] thanks",
  ]
  out, _ = chat_lib.handle_line(session, "/history")
  assert out == [seen[-1] + " [assistant] you might like @ heat (1995) @"]
  assert chat_lib.handle_line(session, "/reset") == (
      ["(new conversation)"], False)
  assert session.turns == []
  assert chat_lib.handle_line(session, "/bogus")[0] == [
      "unknown command /bogus; try /help"]
  assert chat_lib.handle_line(session, "  ") == ([], False)
  assert chat_lib.handle_line(session, "/quit") == (["bye."], True)


def test_chat_loop_transcript(catalogue):
  replies = iter(["what about @ heat (1995) @ ?", "enjoy!"])
  session = chat_lib.ChatSession(catalogue, lambda text: next(replies))
  out = io.StringIO()
  n = chat_lib.chat_loop(
      session, ["hi, I loved The Matrix\n", "\n", "thanks\n", "/quit\n",
                "never read\n"], out)
  assert n == 2
  assert out.getvalue().splitlines() == [
      "you> hi, I loved The Matrix",
      "  (matched: The Matrix (1999))",
      "assistant> what about Heat (1995) ?",
      "  recommended: Heat (1995)",
      "you> thanks",
      "assistant> enjoy!",
      "you> /quit",
      "bye.",
  ]
