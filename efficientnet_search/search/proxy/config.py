"""The proxy's config: the baseline and the short training budget every candidate gets.

The proxy is the paper's small-budget stand-in (Section 3.3: the grid is searched at phi=1
on the baseline): depth `base_depth * alpha`, width `base_width * beta`, resolution
`round(base_resolution * gamma)`. No TensorFlow here, so a search can plan without it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from efficientnet_search.arch.blocks import B0_BLOCK_STRINGS
from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.arch.model import ModelSpec, resolve_spec
from efficientnet_search.data.config import DataConfig

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# The grid's `data` defaults: 10k training / 5k validation images (a 2k validation set alone
# adds ~0.9 points of seed-to-seed spread here, DESIGN.md), batches of 128, no augmentation.
PROXY_DATA = DataConfig(max_train=10_000, max_val=5_000, batch_size=128, augment="none")


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """The baseline and the short training budget every candidate gets.

    Attributes:
      blocks: baseline block strings (default: B0).
      blocks_from: a NAS or grid run's results.json (or run directory) whose baseline
        replaces `blocks` (`--set proxy.blocks_from=runs/nas/results.json`).
      base_width, base_depth, base_resolution: the proxy baseline (phi=0).
      dropout, drop_connect_rate: regularization (small proxies need little).
      bn_momentum: batch-norm momentum (0.9 suits short runs).
      optimizer, learning_rate: a constant-rate optimizer (the batch size and augmentation
        are the grid's `data.batch_size` and `data.augment`).
      epochs: training epochs; `steps_per_epoch` (optional) caps each epoch's steps.
      evals_per_epoch: validation passes per epoch (evenly spaced, the last at the epoch's
        end). A pruner decides at each, so more passes let it stop weak candidates sooner.
      strategy: tf.distribute strategy name per trial (cpu, gpu, mirrored, tpu; distribute.py).
    """

    blocks: tuple[str, ...] = B0_BLOCK_STRINGS
    blocks_from: str | None = None
    base_width: float = 0.25
    base_depth: float = 0.25
    base_resolution: int = 32
    dropout: float = 0.2
    drop_connect_rate: float = 0.0
    bn_momentum: float = 0.9
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: float = 2e-3
    epochs: int = 3
    steps_per_epoch: int | None = None
    evals_per_epoch: int = 1
    strategy: str = "cpu"

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "batch_size": "data.batch_size", "augment": "data.augment",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.blocks_from:
            from efficientnet_search.arch.family import read_baseline

            found = read_baseline(self.blocks_from)
            if tuple(self.blocks) not in (B0_BLOCK_STRINGS, found):
                raise ValueError(
                    f"proxy.blocks and proxy.blocks_from={self.blocks_from!r} disagree; "
                    "give one of them")
            object.__setattr__(self, "blocks", found)  # the resolved config records both
        for name in ("base_width", "base_depth", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"proxy.{name} must be > 0, got {getattr(self, name)!r}")
        if self.epochs < 1:
            raise ValueError(f"proxy.epochs must be >= 1, got epochs={self.epochs}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"proxy.steps_per_epoch must be >= 1, got {self.steps_per_epoch}")
        if self.evals_per_epoch < 1:
            raise ValueError(f"proxy.evals_per_epoch must be >= 1, got {self.evals_per_epoch}")

    @property
    def evaluations(self) -> int:
        """Validation passes of a full run: the pruner's steps are 1..evaluations."""
        return self.epochs * self.evals_per_epoch

    def spec(self, alpha: float, beta: float, gamma: float, num_classes: int) -> ModelSpec:
        """The candidate's architecture (phi=1 scaling of the proxy baseline)."""
        return resolve_spec(
            width=self.base_width * beta,
            depth=self.base_depth * alpha,
            resolution=int(round(self.base_resolution * gamma)),
            dropout=self.dropout,
            blocks=self.blocks,
            num_classes=num_classes,
            drop_connect_rate=self.drop_connect_rate,
        )

    def macs_ratio(self, alpha: float, beta: float, gamma: float, num_classes: int) -> float:
        """Measured multiply-add ratio of the candidate to the proxy baseline."""
        base = spec_cost(self.spec(1.0, 1.0, 1.0, num_classes)).macs
        return spec_cost(self.spec(alpha, beta, gamma, num_classes)).macs / base
