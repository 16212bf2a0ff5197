"""The command line: a table of commands, one adapter per command (absl flags and logging)."""
