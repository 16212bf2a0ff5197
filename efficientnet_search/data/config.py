"""The `data` section of every command's config, and the one loader every command uses.

`grid`, `train`, `finetune`, `evaluate` and `export` (int8 calibration) all describe their data
with one `DataConfig` and read it with `load(config, seed)`, so a source URI, a subset size or
a batch size means the same thing everywhere. Commands differ only in their defaults (the
grid's proxy keeps 10k training images, fine-tuning augments with `medical`); a YAML `data:`
section overrides them key by key (`config.from_dict`).

    data = DataConfig(source="npz:../shared/data/pneumoniamnist_balanced.npz", max_train=256)
    splits = load(data, seed=0)          # DataSplits: train, val, test, num_classes, ...
"""

from __future__ import annotations

import dataclasses

from efficientnet_search.data.pipeline import AUGMENTS
from efficientnet_search.data.sources import parse_uri
from efficientnet_search.data.splits import DataSplits, load_splits


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from, which of them are used, and how they are batched.

    Attributes:
        source: a URI of `sources.ACCEPTED_URIS` (`fashion_mnist`, `npz:PATH`, `folder:PATH`,
            `csv:PATH`, `tfds:NAME[:SPLIT]`, `medmnist:NAME`, `synthetic[:CLASSES]`).
        validation_fraction: share of train carved out as validation when the source has no
            validation split of its own (seeded, stratified).
        max_train, max_val: keep at most this many examples (seeded, stratified); None: all.
        data_dir: where tfds datasets are prepared, `medmnist:` looks for NAME.npz, or an
            extra folder for Fashion-MNIST's idx files.
        manual_dir: manual downloads of tfds builders (chexpert, imagenet2012).
        download: allow downloads; None: the source's default (tfds no, others if missing).
        batch_size: training examples per step, per replica (the global batch is this times
            the replicas; `train` scales the learning rate with it).
        augment: training augmentation, one of `pipeline.AUGMENTS`.
        cache: keep decoded images in memory when they fit (a quarter of RAM).
        shuffle_buffer: examples in the training shuffle buffer.
        class_names: names for reports when the source has none (one per class).
    """

    source: str = "fashion_mnist"
    validation_fraction: float = 0.1
    max_train: int | None = None
    max_val: int | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    download: bool | None = None
    batch_size: int = 32
    augment: str = "none"
    cache: bool = True
    shuffle_buffer: int = 10_000
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        parse_uri(self.source)
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got "
                             f"validation_fraction={self.validation_fraction}")  # fmt: skip
        for name in ("max_train", "max_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or null (all), got {name}={value}")
        for name in ("batch_size", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got "
                             f"augment={self.augment!r}")  # fmt: skip


def load(config: DataConfig, seed: int) -> DataSplits:
    """Reads `config.source` into seeded train/val/test splits (see `splits.load_splits`).

    Args:
        config: the data section.
        seed: seeds the validation carve-out and the subsets (a command's run seed, so every
            candidate or run of one config sees the same split).

    Raises:
        ValueError, FileNotFoundError: one line naming the bad URI, file, key or value.
    """
    splits = load_splits(
        config.source, validation_fraction=config.validation_fraction, seed=seed,
        max_train=config.max_train, max_val=config.max_val, data_dir=config.data_dir,
        manual_dir=config.manual_dir, download=config.download,
    )  # fmt: skip
    if config.class_names is None:
        return splits
    if len(config.class_names) != splits.num_classes:
        raise ValueError(
            f"data.class_names has {len(config.class_names)} names but {config.source!r} has "
            f"{splits.num_classes} classes; give one name per class: {list(config.class_names)}"
        )
    return dataclasses.replace(splits, class_names=tuple(config.class_names))
