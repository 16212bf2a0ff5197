"""Loading the `.keras` files this package writes (train, finetune, the searches' models).

Keras finds a custom class of a saved model only once the module defining it has been
imported. `import efficientnet_search` loads nothing until a name is used, so a plain
`keras.saving.load_model` of one of our models can fail with "Could not locate class
'StochasticDepth'"; `load_model` imports the defining modules first.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras


def load_model(path: str | os.PathLike, *, compile: bool = False,
               name: str = "model") -> keras.Model:
    """The model saved at `path`, with this package's layers, schedules and optimizer known.

    Args:
      compile: restore the optimizer and loss too (needed only to continue training).
      name: how the error names the path's origin (a flag or config key), e.g. `--model`.
    """
    from efficientnet_search.arch import layers  # noqa: F401  (StochasticDepth)
    from efficientnet_search.training import recipe  # noqa: F401  (schedule, RMSprop)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} {str(path)!r} does not exist (expected a .keras file "
                                f"saved by efficientnet_search or Keras)")
    return keras.saving.load_model(path, compile=compile)
