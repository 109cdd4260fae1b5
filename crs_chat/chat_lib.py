"""Pure pieces of the terminal chat (`crs_chat/main.py`) with a T5-CR model.

- `format_history`: the model input for a dialogue, the same string the
  ReDial task builds (`redial conversation: [user] ... [assistant] ...`,
  lower-cased); `fit_history` keeps the most recent turns that fit.
- `ChatSession`: the conversation state; `handle_line` adds the `/reset`,
  `/history`, `/help` and `/quit` commands; `chat_loop` reads stdin.

The films a user types and the model writes are found in the movie list by
`crs_chat/catalogue.py` (`Catalogue`, `load_catalogue`, `mark_titles`,
`recommended_titles`, ...).
"""

import dataclasses
from typing import Callable, Iterable, Sequence, TextIO

from crs_chat import catalogue as catalogue_lib
from crs_tasks import preprocessors
from crs_tasks import redial_utils

SPEAKER_TAGS = {
    "user": redial_utils.USER_TAG,
    "assistant": redial_utils.ASSISTANT_TAG,
}
COMMANDS = {
    "/reset": "start a new conversation",
    "/history": "show the model input for the conversation so far",
    "/help": (
        "show this help; type titles capitalised, with the year or in "
        "quotes (\"the matrix\") to have them matched"
    ),
    "/quit": "leave",
}



def format_history(turns: Sequence[tuple[str, str]]) -> str:
  """The model input for a dialogue, as the ReDial task writes it.

  Example: `[("user", "Hi! Any @ Heat (1995) @ fans?"), ("assistant", "yes")]`
  -> `"redial conversation: [user] hi! any @ heat (1995) @ fans? [assistant]
  yes"`.

  Args:
    turns: `(speaker, text)` with speaker `"user"` or `"assistant"`.

  Returns:
    The lower-cased input string.

  Raises:
    ValueError: an unknown speaker.
  """
  parts = []
  for speaker, text in turns:
    if speaker not in SPEAKER_TAGS:
      raise ValueError(f"unknown speaker {speaker!r}; use {list(SPEAKER_TAGS)}")
    parts.append(f"{SPEAKER_TAGS[speaker]} {' '.join(text.split())}")
  return (preprocessors.REDIAL_PREFIX + " ".join(parts)).strip().lower()


def fit_history(
    turns: Sequence[tuple[str, str]], fits: Callable[[str], bool]
) -> str:
  """`format_history` of the most recent turns for which `fits` holds.

  Args:
    turns: the whole dialogue.
    fits: e.g. "encodes to at most `inputs_length` tokens".

  Returns:
    The input with the oldest turns dropped until it fits (the last turn is
    always kept).
  """
  for start in range(len(turns)):
    text = format_history(turns[start:])
    if fits(text):
      return text
  return format_history(turns[-1:])


@dataclasses.dataclass
class Response:
  """One exchange: what the model saw and said.

  Attributes:
    user_text: the user's turn with titles marked.
    user_movies: the films matched in it.
    model_input: the formatted history fed to the model.
    reply: the raw generated text.
    recommendations: `recommended_titles(reply)` (catalogue films only).
    not_in_catalogue: `unknown_titles(reply)`.
    notes: why titles the user typed were left unmatched.
  """

  user_text: str
  user_movies: list[catalogue_lib.Movie]
  model_input: str
  reply: str
  recommendations: list[str]
  not_in_catalogue: list[str] = dataclasses.field(default_factory=list)
  notes: list[str] = dataclasses.field(default_factory=list)


class ChatSession:
  """A dialogue with a model behind `generate_fn(model_input) -> reply`."""

  def __init__(
      self,
      catalogue: catalogue_lib.Catalogue,
      generate_fn: Callable[[str], str],
      fits: Callable[[str], bool] = lambda text: True,
  ):
    self.catalogue = catalogue
    self.generate_fn = generate_fn
    self.fits = fits
    self.turns: list[tuple[str, str]] = []

  def reset(self) -> None:
    self.turns = []

  def respond(self, text: str) -> Response:
    """Adds a user turn, asks the model, adds its reply as assistant turn."""
    notes = []
    user_text, movies = catalogue_lib.mark_titles(text, self.catalogue,
                                                   notes)
    self.turns.append(("user", user_text))
    model_input = fit_history(self.turns, self.fits)
    reply = " ".join(self.generate_fn(model_input).split())
    self.turns.append(("assistant", reply))
    return Response(
        user_text=user_text,
        user_movies=movies,
        model_input=model_input,
        reply=reply,
        recommendations=catalogue_lib.recommended_titles(
            reply, self.catalogue),
        not_in_catalogue=catalogue_lib.unknown_titles(reply, self.catalogue),
        notes=notes,
    )


def handle_line(session: ChatSession, line: str) -> tuple[list[str], bool]:
  """Runs one line typed by the user.

  Args:
    session: the conversation.
    line: a message or a command (`/reset`, `/history`, `/help`, `/quit`).

  Returns:
    Lines to print, and whether to quit.
  """
  line = line.strip()
  if not line:
    return [], False
  if line.startswith("/"):
    command = line.split()[0].lower()
    if command == "/quit":
      return ["bye."], True
    if command == "/reset":
      session.reset()
      return ["(new conversation)"], False
    if command == "/history":
      return [format_history(session.turns) if session.turns else "(empty)"], (
          False
      )
    if command == "/help":
      return [f"{c}: {h}" for c, h in COMMANDS.items()], False
    return [f"unknown command {command}; try /help"], False
  response = session.respond(line)
  out = []
  if response.user_movies:
    out.append(
        "  (matched: " + "; ".join(m.title for m in response.user_movies) + ")"
    )
  out.extend(f"  (note: {note})" for note in response.notes)
  out.append("assistant> " + catalogue_lib.readable_reply(
      response.reply, session.catalogue))
  if response.recommendations:
    out.append("  recommended: " + "; ".join(response.recommendations))
  if response.not_in_catalogue:
    out.append("  (not in the catalogue: "
               + "; ".join(response.not_in_catalogue) + ")")
  return out, False


def chat_loop(
    session: ChatSession,
    lines: Iterable[str],
    out: TextIO,
    *,
    echo: bool = True,
) -> int:
  """Runs a conversation over input lines until `/quit` or end of input.

  Args:
    session: the conversation.
    lines: what the user types, one message or command per line.
    out: where the transcript goes.
    echo: write each input line as `you> ...` (for piped input; a terminal
      shows what was typed already).

  Returns:
    The number of model replies.
  """
  replies = 0
  for line in lines:
    if echo and line.strip():
      out.write(f"you> {line.strip()}\n")
    printed, quit_ = handle_line(session, line)
    replies += any(p.startswith("assistant> ") for p in printed)
    for text in printed:
      out.write(text + "\n")
    out.flush()
    if quit_:
      break
  return replies
