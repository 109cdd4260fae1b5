"""crs_chat: talk with a trained T5-CR model in the terminal (top floor).

`python -m crs_chat.main --checkpoint_path=...` (`main.py`, the command);
`chat_lib.py` (the conversation: history, session, commands) and
`catalogue.py` (the movie list: matching typed and generated titles). It
may import `crs_runtime`, `crs_tasks` and `train`; nothing imports it.
"""
