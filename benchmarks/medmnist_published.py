"""MedMNIST v2's published test figures, (AUC, ACC) per method, the one place they are kept.

Source: Yang, Shi, Wei, Liu, Zhao, Ke, Pfister & Ni, "MedMNIST v2 - A large-scale lightweight
benchmark for 2D and 3D biomedical image classification", Scientific Data 10:41 (2023),
Table 3 (2D data sets, official test splits; the mean of 3 runs; ACC at the 0.5 cut /
argmax). Only cells checked against a second copy of the table are kept (2026-12-06: the
pneumonia ResNet rows in two independent quotations, the BreastMNIST ResNet-18 (28) cell
recomputed from the released predictions by a third party, the Google AutoML Vision cells
quoted by the issue that asked for this table and by a leaderboard); a method missing from
a data set here was not checked, not absent from the paper.
"""

from __future__ import annotations

PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "pneumoniamnist": {
        "ResNet-18 (28)": (0.944, 0.854),
        "ResNet-18 (224)": (0.956, 0.864),
        "ResNet-50 (28)": (0.948, 0.854),
        "ResNet-50 (224)": (0.962, 0.884),
        "AutoKeras": (0.947, 0.878),
        "Google AutoML Vision": (0.991, 0.946),
    },
    "breastmnist": {
        "ResNet-18 (28)": (0.901, 0.863),
        "Google AutoML Vision": (0.919, 0.861),
    },
    "retinamnist": {
        "ResNet-18 (28)": (0.717, 0.524),
        "Google AutoML Vision": (0.750, 0.531),
    },
}


def published_for(name: str) -> dict[str, tuple[float, float]]:
    """The rows for a data set named like its MedMNIST file (`breastmnist.npz` ->
    breastmnist); empty for a set the table does not hold."""
    key = name.lower().removesuffix(".npz").split("_")[0]
    return PUBLISHED.get(key, {})
