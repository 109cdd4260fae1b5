"""crs_runtime: the process runtime every command stands on (ground floor).

`cli` (how a command runs: one-line user errors, log capture, `next:`
lines), `allocator` (tcmalloc for the commands where the machine has it),
`errors` (`UserError`, close-match suggestions) and `gin_flags`
(`--gin.NAME=VALUE`, checked gin bindings). It imports nothing from
`crs_tasks`, `train`, `eval` or `crs_chat`, and importing it has no side
effects: each entry point calls `cli.capture_early()` itself.
"""
