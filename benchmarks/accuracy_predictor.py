"""Would an accuracy predictor stand in for the supernet's scores? (issue 30, item 4: "an
accuracy predictor only where it measurably helps").

    python benchmarks/accuracy_predictor.py RUN/scored.csv [--folds 5] [--out FILE.json]

Once-for-All (Cai et al. 2020, Section 3.3) fits a small MLP from a subnet's one-hot
architecture encoding to its accuracy on ~16k measured subnets, then searches on the
predictor, which costs microseconds where a measurement costs seconds. It pays when the
search needs far more evaluations than measuring allows. Here it is checked on a finished
one-shot run: every scored architecture's choices one-hot encoded (every choice value seen
in the file is one feature), k-fold cross-validated ridge regression (alpha by internal
CV) and a two-layer MLP (scikit-learn), and the Spearman rank correlation between predicted
and supernet score on the held-out folds (over all and within the best-scored 10%), beside
MACs and params alone. A predictor worth using ranks held-out subnets about as the
supernet does; one far below would trade most of the supernet's information for speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def encode(choices: list[dict[str, Any]]) -> np.ndarray:
    """One-hot features: one column per (choice, value) seen in `choices`."""
    columns = sorted({(key, json.dumps(c[key])) for c in choices for key in c})
    index = {column: i for i, column in enumerate(columns)}
    features = np.zeros((len(choices), len(columns)))
    for row, c in enumerate(choices):
        for key, value in c.items():
            features[row, index[(key, json.dumps(value))]] = 1.0
    return features


def cross_validated(features: np.ndarray, scores: np.ndarray, folds: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Held-out predictions of each model, every row predicted by a model not fit on it."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.neural_network import MLPRegressor

    models = {
        "ridge": lambda: RidgeCV(alphas=np.logspace(-3, 3, 13)),
        "mlp": lambda: MLPRegressor(hidden_layer_sizes=(128, 128), alpha=1e-3, max_iter=2000,
                                    random_state=seed),
    }
    predicted = {name: np.zeros_like(scores) for name in models}
    for train, held in KFold(folds, shuffle=True, random_state=seed).split(features):
        for name, make in models.items():
            model = make().fit(features[train], scores[train])
            predicted[name][held] = model.predict(features[held])
    return predicted


def check(path: Path, folds: int) -> dict[str, Any]:
    """The predictors' held-out rank agreement with the supernet's scores in `path`."""
    from efficientnet_search.search.nas.oneshot.ranking import bootstrap
    from efficientnet_search.search.stats import spearman

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) < 10 * folds:
        raise ValueError(f"{path} holds {len(rows)} scored architectures; a {folds}-fold check "
                         f"needs at least {10 * folds}")  # fmt: skip
    scores = np.array([float(r["score"]) for r in rows])
    features = encode([json.loads(r["params_json"]) for r in rows])
    top = np.argsort(-scores)[: max(len(rows) // 10, 3)]
    out: dict[str, Any] = {"scored": len(rows), "features": int(features.shape[1]),
                           "folds": folds, "score_sd": float(scores.std(ddof=1)),
                           "predictors": {}}  # fmt: skip
    candidates = {**cross_validated(features, scores, folds),
                  "macs": np.array([float(r["macs"]) for r in rows]),
                  "params": np.array([float(r["params"]) for r in rows])}  # fmt: skip
    for name, values in candidates.items():
        out["predictors"][name] = {
            "spearman": spearman(values, scores),
            "spearman_ci": bootstrap(values, scores, spearman, samples=200),
            "spearman_top10": spearman(values[top], scores[top])}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scored", help="a one-shot run's scored.csv")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    path = Path(args.scored)
    if not path.exists() or args.folds < 2:
        print(f"{path}: give a one-shot run's scored.csv and --folds >= 2")
        sys.exit(2)
    try:
        result = check(path, args.folds)
    except ValueError as err:
        print(err)
        sys.exit(2)
    print(f"{result['scored']} scored architectures, {result['features']} one-hot features, "
          f"supernet score SD {100 * result['score_sd']:.2f} points; held-out Spearman with "
          f"the supernet's score ({args.folds}-fold):")
    for name, r in result["predictors"].items():
        low, high = r["spearman_ci"]
        print(f"{name:>7}  {r['spearman']:+.3f} [{low:+.3f}, {high:+.3f}]  within the best "
              f"10%: {r['spearman_top10']:+.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"command": " ".join(
            ["python", "benchmarks/accuracy_predictor.py", *(argv or sys.argv[1:])]),
            **result}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
