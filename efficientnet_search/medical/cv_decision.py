"""The recipe `train.cv` trains: the configured one, unless a cross-validated candidate beats
it beyond noise.

The configured recipe (backbone, input size, phase 2 as configured) is the incumbent. Its
out-of-fold AUC is measured the way it will be trained: phase 2 inside the folds
(medical/depth_choice.py), first, because it is the comparison every other candidate needs.
Then the frozen-feature heads of the other backbones and sizes (medical/recipe_choice.py),
and phase 2 at the best of those while `train.cv_budget_s` lasts. The best candidate replaces
the incumbent only when the paired bootstrap interval of its out-of-fold AUC gain over the
incumbent's, on the same training images, lies above zero, at the run's `eval.confidence`
Bonferroni-corrected for the number of candidates compared. A configured recipe whose phase 2
could not be measured within the budget is trained as configured: nothing is compared with a
score that was not measured.

Why a gate rather than the best point estimate (issue 27, BUILD_NOTES): on 500-image subsets
the heads' out-of-fold AUCs at 128, 160 and 224 px differed by 0.01-0.015, while an AUC over
500 images has a standard error near 0.007; picking the largest moved the input size to 224 px
on every subset and lost test AUC to the configured recipe on two of three.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search.medical import clinical, cv, depth_choice, recipe_choice
from efficientnet_search.medical.transfer import configured_resolution


def paired_auc_gain(y: np.ndarray, candidate: np.ndarray, incumbent: np.ndarray, *,
                    n_resamples: int, confidence: float, seed: int
                    ) -> tuple[float, float, float]:
    """(AUC gain of `candidate` over `incumbent` scores, its percentile bootstrap interval),
    resampling the same images for both, so the two AUCs' shared noise cancels."""
    y = np.asarray(y).ravel()
    gain = cv.cv_auc(y, candidate) - cv.cv_auc(y, incumbent)

    def resampled(idx: np.ndarray) -> float:
        if len(np.unique(y[idx])) < len(np.unique(y)):
            return float("nan")
        return cv.cv_auc(y[idx], candidate[idx]) - cv.cv_auc(y[idx], incumbent[idx])

    low, high = clinical.bootstrap_ci(resampled, len(y), n_resamples=n_resamples,
                                      confidence=confidence, seed=seed)
    return gain, low, high


def choose(config, splits) -> tuple[dict[str, Any], cv.FoldHeads]:
    """(the record of every candidate and the decision, the fold heads of the chosen
    backbone and size). The record's variant / resolution / unfreeze_blocks are what is
    trained. The heads' out-of-fold scores, not phase 2's, give the operating threshold: on
    a 500-image subset the shortened phase 2 inside the folds scored pneumonia lower than the
    trained model did, and Youden's threshold on its scores (0.045) put the test headline
    accuracy at 0.715, under the majority share, where the heads' (0.152) gave 0.865
    (BUILD_NOTES, issue 27, session 16)."""
    t = config.train
    started = time.perf_counter()
    recipe = recipe_choice.head_recipe(config)
    blocks = t.unfreeze_blocks if t.finetune_epochs > 0 else 0
    home = (config.model.variant, configured_resolution(config.model))

    tic = time.perf_counter()
    home_heads = recipe_choice.features_and_heads(*home, config, splits, recipe)
    known = {home: (home_heads, time.perf_counter() - tic)}
    phase2: list[dict[str, Any]] = []
    # every measured recipe: (variant, resolution, unfreeze_blocks; 0 = head only) -> scores
    scored: dict[tuple[str, int, int], cv.FoldHeads] = {(*home, 0): home_heads}

    def measure(key: tuple[str, int], expected: float = 0.0) -> float | None:
        heads, seconds = known[key]
        left = t.cv_budget_s - (time.perf_counter() - started)
        tuned, record = depth_choice.measure_phase2(config, splits, *key, heads, recipe, left,
                                                    seconds, expected)
        phase2.append(record)
        if tuned is not None:
            scored[(*key, blocks)] = tuned
        return record["seconds"]

    home_seconds = measure(home) if blocks else None
    picked = recipe_choice.choose(config, splits, known, started)
    known = picked.measured
    for key, (heads, _) in known.items():
        scored.setdefault((*key, 0), heads)
    best_head = (picked.variant, picked.resolution)
    if home_seconds is not None and best_head != home:  # scaled by pixels or feature passes
        scale = max((best_head[1] / home[1]) ** 2, known[best_head][1] / known[home][1])
        measure(best_head, home_seconds * scale)

    incumbent = (*home, blocks)
    if incumbent in scored:
        decision = _decide(config, scored, incumbent)
    else:  # nothing is compared with a recipe whose score was not measured
        decision = {"chosen": incumbent, "switched": False,
                    "verdict": "the configured recipe's phase 2 could not be measured within "
                               "train.cv_budget_s (see its row), so no candidate is compared "
                               "with it: the configured recipe is trained"}
    chosen = decision.pop("chosen")
    record = {"variant": chosen[0], "resolution": chosen[1], "unfreeze_blocks": chosen[2],
              "cv_auc": scored[chosen].auc if chosen in scored else None,
              "candidates": list(picked.candidates), "unfreeze": phase2,
              "incumbent": {"variant": home[0], "resolution": home[1],
                            "unfreeze_blocks": blocks,
                            "cv_auc": scored[incumbent].auc if incumbent in scored else None},
              "decision": decision}
    logging.info("cross-validation: training %s at %d px with %s (%s)", chosen[0], chosen[1],
                 f"{chosen[2]} stages unfrozen" if chosen[2] else "no phase 2",
                 decision["verdict"])
    return record, scored[(*chosen[:2], 0)]


def _decide(config, scored: dict[tuple[str, int, int], cv.FoldHeads],
            incumbent: tuple[str, int, int]) -> dict[str, Any]:
    e = config.eval
    others = {k: h for k, h in scored.items() if k != incumbent}
    if not others:
        return {"chosen": incumbent, "switched": False,
                "verdict": "no other candidate measured: the configured recipe is trained"}
    best = max(others, key=lambda k: others[k].auc)
    confidence = 1.0 - (1.0 - e.confidence) / len(others)  # Bonferroni over the candidates
    base = scored[incumbent]
    gain, low, high = paired_auc_gain(base.labels, others[best].oof, base.oof,
                                      n_resamples=e.bootstrap_resamples,
                                      confidence=confidence, seed=config.seed)
    switched = bool(low > 0)
    label = f"{best[0]} at {best[1]} px, " + (f"phase 2 on {best[2]} stages" if best[2]
                                               else "head only")
    verdict = (f"best other candidate {label}: out-of-fold AUC {gain:+.4f} against the "
               f"configured recipe ({confidence:.1%} paired bootstrap interval {low:+.4f} to "
               f"{high:+.4f}, {len(others)} candidates); "
               + ("above zero: it is trained" if switched
                  else "not beyond noise: the configured recipe is trained"))
    return {"chosen": best if switched else incumbent, "switched": switched,
            "best_other": {"variant": best[0], "resolution": best[1],
                           "unfreeze_blocks": best[2], "cv_auc": others[best].auc},
            "gain": gain, "interval": [low, high], "confidence": confidence,
            "candidates_compared": len(others), "verdict": verdict}
