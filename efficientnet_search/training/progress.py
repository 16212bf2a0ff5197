"""How much progress a training loop prints: bars on a terminal, one line per epoch elsewhere.

Keras' progress bar (verbose=1) redraws itself after every step with `\\r` and terminal
escapes. Where stdout is a file or a pipe (a log, CI, a batch job, `| tee`), each redraw is
kept, so a 30-epoch fine-tuning log grows to megabytes of bars. Keras' verbose=2 prints one
line per epoch instead; every training loop (train, the grid's proxy, fine-tuning) asks
`keras_verbose` which one to use.
"""

from __future__ import annotations

import sys
from typing import TextIO

SILENT, BARS, PER_EPOCH = 0, 1, 2


def keras_verbose(verbose: int = BARS, stream: TextIO | None = None) -> int:
    """The Keras `verbose` for `fit`/`evaluate`/`Progbar`: bars (1) only on a terminal.

    Args:
      verbose: what the caller asked for (0 silent, 1 progress bars, 2 one line per epoch).
      stream: where Keras writes (default: the current `sys.stdout`).

    Returns:
      `verbose`, except that 1 becomes 2 when `stream` is not a terminal.
    """
    if verbose not in (SILENT, BARS, PER_EPOCH):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if verbose != BARS:
        return verbose
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        terminal = bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        terminal = False
    return BARS if terminal else PER_EPOCH
