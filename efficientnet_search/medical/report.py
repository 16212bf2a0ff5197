"""What a fine-tuning run leaves for its readers: plots, report.md and model_card.md.

Plots (`plotting`): ROC curves of the test split with the validation-chosen operating
point, the confusion matrix (or per-label sensitivity/specificity for multi-label), training
curves over both phases, and Grad-CAM overlays of the most confident correct and wrong test
predictions.
The model card follows Mitchell et al. 2019 ("Model Cards for Model Reporting") in brief.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from efficientnet_search import plotting
from efficientnet_search.arch import scaling
from efficientnet_search.medical import clinical, gradcam, metrics

GRADCAM_SCAN_LIMIT = 2048  # test images searched for the most confident examples

DISCLAIMER = (
    "**Not for clinical use.** This model is a research artifact. It has not been validated "
    "prospectively, on other sites or scanners, or by regulators, and must not be used to "
    "diagnose, treat or triage patients."
)


def write_all(run_dir: Path, model: keras.Model, results: dict, predictions: dict,
              test_pipe: tf.data.Dataset, gradcam_images: int = 4) -> list[Path]:
    """Writes plots/*.png, report.md and model_card.md; returns the plot paths."""
    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written = [plot_roc(plots / "roc.png", predictions["y_test"], predictions["s_test"], results),
               plot_confusion(plots / "confusion_matrix.png", results),
               plot_training(plots / "training_curves.png", results["history"])]
    if gradcam_images > 0:
        overlay = gradcam_overlay(plots / "gradcam.png", model, test_pipe, results,
                                  gradcam_images)
        if overlay is not None:
            written.append(overlay)
    (run_dir / "report.md").write_text(report_text(results, [p.name for p in written]))
    (run_dir / "model_card.md").write_text(model_card_text(results))
    return written


def plot_roc(path: Path, y: np.ndarray, scores: np.ndarray, results: dict) -> Path:
    """Test ROC curves with their AUC; the binary operating point is marked."""
    task, names = results["task"], results["data"]["class_names"]
    positive = results["config"]["eval"]["positive_class"]
    if task == "binary":
        curves = [(names[positive], y.ravel() == positive, scores[:, positive])]
    elif task == "multiclass":
        curves = [(n, y.ravel() == k, scores[:, k]) for k, n in enumerate(names)]
    else:
        curves = [(n, y[:, k], scores[:, k]) for k, n in enumerate(names)]
    fig, ax = plotting.figure(figsize=(5.5, 5))
    for name, truth, score in curves:
        fpr, tpr, _ = metrics.roc_curve(truth, score)
        ax.plot(fpr, tpr, lw=1.3, label=f"{name} (AUC {metrics.roc_auc(truth, score):.3f})")
    if task == "binary":
        test = results["test"]
        ax.plot(1 - test["specificity"], test["sensitivity"], "ko",
                label=operating_point_label(results))
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, test split")
    ax.legend(fontsize=7, loc="lower right")
    return plotting.save(fig, path)


def operating_point_label(results: dict) -> str:
    """The ROC legend of the binary operating point: its threshold and where it was chosen
    (validation, or out of fold on the training split: a plot must not say validation when
    cross-validation chose it)."""
    th = results.get("threshold", {})
    where = ("fixed in the config" if th.get("method") == "fixed"
             else "validation" if th.get("chosen_on", "validation") == "validation"
             else "training split, out of fold")
    return f"operating point (threshold {results['test']['threshold']:.3f}, {where})"


def plot_confusion(path: Path, results: dict) -> Path:
    """Confusion matrix (single-label) or per-label sensitivity/specificity (multi-label)."""
    test, names = results["test"], results["data"]["class_names"]
    if results["task"] == "multilabel":
        per = test["per_label"]
        x = np.arange(len(per))
        fig, ax = plotting.figure(figsize=(max(5, 0.5 * len(per)), 4))
        ax.bar(x - 0.2, [v["sensitivity"] for v in per.values()], 0.4, label="sensitivity")
        ax.bar(x + 0.2, [v["specificity"] for v in per.values()], 0.4, label="specificity")
        ax.set_xticks(x, list(per), rotation=60, fontsize=7)
        ax.set(ylim=(0, 1), title="Per label at validation-chosen thresholds (test)")
        ax.legend(fontsize=8)
        return plotting.save(fig, path)
    matrix = np.asarray(test["confusion_matrix"])
    fig, ax = plotting.figure(figsize=(1.2 * len(names) + 3, 1.2 * len(names) + 2.5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(len(names)), names, rotation=45, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix, test split")
    return plotting.save(fig, path)


def plot_training(path: Path, history: dict) -> Path:
    """Loss, accuracy and validation AUC per epoch; a line marks the start of phase 2."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plotting.figure(1, 3, figsize=(13, 3.6))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    acc_key = "binary_accuracy" if "binary_accuracy" in history else "accuracy"
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", [acc_key, "val_" + acc_key]),
              ("validation ROC-AUC", ["val_auc"])]
    phases = history.get("phase", [])
    switch = next((i for i, p in enumerate(phases) if p == "finetune"), None)
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            if key in history:
                ax.plot(epochs, history[key], marker=".", label=key)
        xlabel = "epoch"
        if switch:
            ax.axvline(switch + 0.5, color="gray", ls="--", lw=0.8)
            xlabel += " (dashed: phase 2 starts)"
        ax.set(title=title, xlabel=xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend(fontsize=7)
    return plotting.save(fig, path)


def gradcam_overlay(path: Path, model: keras.Model, pipe: tf.data.Dataset, results: dict,
                    per_group: int, scan_limit: int = GRADCAM_SCAN_LIMIT) -> Path | None:
    """Grad-CAM of the most confident correct and wrong test predictions, each true class in
    turn (gradcam.pick_examples).

    Scans up to `scan_limit` test images, keeping only the current picks of each group, so
    memory stays at a few images whatever the resolution.
    """
    thresholds = [clinical.Threshold(**t) for t in results["threshold"]["values"]]
    task = results["task"]
    positive = results["config"]["eval"]["positive_class"]
    kept: list[tuple] = []  # (margin, image, label, pred, score)
    groups: dict[str, list] = {}
    scanned = 0
    for x, y in pipe:
        if scanned >= scan_limit:
            break
        scores = np.asarray(model.predict_on_batch(x))
        pred = clinical.predict_labels(scores, task, thresholds, positive)
        margin = clinical.prediction_margin(scores, task, thresholds, positive)
        images, labels = x.numpy(), y.numpy()
        kept += [(margin[i], images[i], labels[i], pred[i], scores[i])
                 for i in range(len(pred))]  # fmt: skip
        # Re-picked over what was kept and this batch: a class's best so far is never lost.
        # The picks' images are copied out of their batch, which can then be freed.
        chosen = gradcam.pick_examples(np.stack([k[2] for k in kept]),
                                       np.stack([k[3] for k in kept]), per_group,
                                       np.array([k[0] for k in kept]))  # fmt: skip
        groups = {g: [(kept[i][0], np.array(kept[i][1]), *kept[i][2:]) for i in idx]
                  for g, idx in chosen.items()}  # fmt: skip
        kept = groups["correct"] + groups["wrong"]
        scanned += len(pred)
    items = [(g, *item[1:]) for g in ("correct", "wrong") for item in groups.get(g, [])]
    if not items:
        return None
    images = np.stack([it[1] for it in items])
    explain = [int(np.argmax(it[4])) if task == "multilabel" else int(np.argmax(it[4])
               if task == "multiclass" else it[3]) for it in items]
    layer = gradcam.explained_layer(model, images.shape[1:3])
    heat = gradcam.gradcam(model, images, explain, layer.name)
    names = results["data"]["class_names"]
    titles = [f"{g}: true {_name(t, names)} / pred {_name(p, names)}"
              + _score_text(score, task, thresholds, positive)
              for g, _, t, p, score in items]  # fmt: skip
    return gradcam.save_overlays(path, images, heat, titles, layer=layer)


def _score_text(score: np.ndarray, task: str, thresholds, positive: int) -> str:
    """The score behind a prediction, for a figure title: the top class probability
    (multiclass) or the positive score against the operating threshold (binary)."""
    score = np.asarray(score, dtype=np.float64).ravel()
    if task == "multiclass":
        return f"\np={score.max():.2f}"
    if task == "binary":
        p_positive = score[positive] if score.size > 1 else score[0]
        return f"\nscore {p_positive:.2f}, threshold {thresholds[0].value:.2f}"
    return ""


def _name(label, names) -> str:
    label = np.asarray(label)
    if label.ndim == 0:
        return names[int(label)]
    on = [names[k] for k in np.flatnonzero(label > 0.5)]
    return "+".join(on[:2]) + ("..." if len(on) > 2 else "") if on else "none"


def _ci(metrics: dict, key: str) -> str:
    low, high = metrics[f"{key}_ci"]
    return f"{metrics[key]:.4f} ({low:.4f}-{high:.4f})"


def metrics_table(results: dict) -> str:
    """Markdown table of the headline metrics on the test split (with 95% CIs)."""
    t = results["test"]
    conf = int(round(100 * t["bootstrap"]["confidence"]))
    rows = [f"| metric | value ({conf}% bootstrap CI) |", "|---|---|",
            f"| ROC-AUC{' (macro)' if results['task'] != 'binary' else ''} | {_ci(t, 'auc')} |",
            f"| accuracy | {_ci(t, 'accuracy')} |",
            *([f"| accuracy at p=0.5 | {_ci(results['test_at_0.5'], 'accuracy')} |"]
              if "test_at_0.5" in results else []),
            (f"| balanced accuracy | {_ci(t, 'balanced_accuracy')} |"
             if "balanced_accuracy_ci" in t else
             f"| balanced accuracy | {t['balanced_accuracy']:.4f} |")]
    if "majority_class_share" in t and results["task"] != "multilabel":
        rows.append(f"| majority-class share (always answering it) | "
                    f"{t['majority_class_share']:.4f} |")
    if "quadratic_weighted_kappa" in t:
        rows.append(f"| quadratic-weighted kappa (ordinal) | "
                    f"{_ci(t, 'quadratic_weighted_kappa')} |")
    if results["task"] == "binary":
        rows += [f"| sensitivity ({t['positive_class']}) | {t['sensitivity']:.4f} |",
                 f"| specificity | {t['specificity']:.4f} |",
                 f"| threshold on P({t['positive_class']}) | {t['threshold']:.4f} |"]
    return "\n".join(rows)


def _per_class_table(results: dict) -> str:
    per = results["test"].get("per_label") or results["test"]["per_class"]
    rows = ["| class/label | AUC | sensitivity | specificity |", "|---|---|---|---|"]
    rows += [f"| {name} | {v['auc']:.4f} | {v['sensitivity']:.4f} | {v['specificity']:.4f} |"
             for name, v in per.items()]
    return "\n".join(rows)


def _operating_point(results: dict, th: dict) -> str:
    best = (f"(best validation AUC {results['best_val_auc']:.4f} at epoch "
            f"{results['best_epoch']})")
    if results["task"] == "multiclass":
        prior = results.get("class_prior", "data")
        meaning = ("the training data's class frequencies" if prior == "data"
                   else "equally frequent classes")
        return f"Decision: argmax of probabilities that assume {meaning} {best}."
    where = ("the **validation** split" if th["chosen_on"] == "validation"
             else f"the **{th['chosen_on']}**")
    extra = ""
    if "threshold_ci" in th:
        low, high = th["threshold_ci"]
        extra = (f" Threshold bootstrap interval {low:.3f}-{high:.3f}; out-of-fold AUC "
                 f"{th['oof_auc']:.4f}.")
    return f"Operating threshold: {th['method']}, chosen on {where} {best}.{extra}"


def _cv_section(results: dict) -> list[str]:
    """The recipe candidates and their cross-validated AUCs, when chosen so, the decision
    against the configured recipe, and whether the fold heads' average was kept."""
    record = (results.get("cv") or {}).get("recipe")
    if not record:
        return _ensemble_lines(results)
    phase2 = (f"phase 2 on {record['unfreeze_blocks']} stages" if record["unfreeze_blocks"]
              else "no phase 2")
    rows = ["Chosen by cross-validation on the training split: **"
            f"{record['variant']} at {record['resolution']} px, {phase2}**.", "",
            "| backbone | resolution | recipe | CV AUC | seconds |", "|---|---|---|---|---|"]
    measured = [(c, "head on frozen features") for c in record["candidates"]]
    measured += [({"variant": record["variant"], "resolution": record["resolution"]} | u,
                  f"phase 2, {u['unfreeze_blocks']} stages")
                 for u in record.get("unfreeze", []) if u["unfreeze_blocks"]]  # older runs
    for c, what in measured:
        auc = (f"skipped ({c.get('skipped', 'budget')})" if c["cv_auc"] is None
               else f"{c['cv_auc']:.4f}")
        seconds = "-" if c["seconds"] is None else c["seconds"]
        rows.append(f"| {c['variant']} | {c['resolution']} | {what} | {auc} | {seconds} |")
    decision = record.get("decision")
    if decision:
        home = record["incumbent"]
        score = "not measured" if home["cv_auc"] is None else f"CV AUC {home['cv_auc']:.4f}"
        rows += ["", f"Against the configured recipe ({home['variant']} at "
                 f"{home['resolution']} px, {score}): {decision['verdict']}."]
    return [*rows, "", *_ensemble_lines(results)]


def _ensemble_lines(results: dict) -> list[str]:
    e = (results.get("cv") or {}).get("ensemble")
    if not e:
        return []
    if not e["compared"]:
        return [f"Fold-head ensemble: not compared ({e['reason']}).", ""]
    kept = ("**kept**: the saved model averages the fold heads" if e["used"]
            else "not kept: the saved model has one head")
    return [f"Fold-head ensemble, nested {e['folds']}-fold cross-validation on the training "
            f"split: average of fold heads out-of-fold AUC {e['ensemble_oof_auc']:.4f}, one "
            f"head {e['single_head_oof_auc']:.4f} ({e['rule']}): {kept}.", ""]


def report_text(results: dict, plot_names: list[str]) -> str:
    """report.md: metrics with intervals, threshold, per-class table, plots, notes."""
    th = results["threshold"]
    n_b = results["test"]["bootstrap"]["n_resamples"]
    lines = [
        f"# Fine-tuning report: {results['config']['name']}", "",
        f"Data `{results['data']['source']}`, task {results['task']}, split sizes "
        f"{results['data']['sizes']}, input {results['data']['resolution']} px. Metrics on the "
        f"{results['test_split']} split ({results['test']['n']} images); intervals from "
        f"{n_b} bootstrap resamples.", "",
        metrics_table(results), "",
        _operating_point(results, th),
        "", _per_class_table(results), "",
    ]
    if results["task"] != "multilabel":
        lines += ["Confusion matrix (rows true, columns predicted): "
                  f"`{results['test']['confusion_matrix']}`", ""]
    lines += _cv_section(results)
    lines += [f"![{name}](plots/{name})" for name in plot_names]
    lines += ["", *[f"- note: {n}" for n in results["notes"]], "", DISCLAIMER, ""]
    return "\n".join(lines)


def _recipe(t: dict) -> str:
    parts = []
    if t["head_epochs"]:
        parts.append(f"Phase 1: the new head trained up to {t['head_epochs']} epochs (Adam "
                     f"{t['head_learning_rate']:g}) with the backbone frozen.")
    if t["finetune_epochs"]:
        what = ("the whole network" if t["unfreeze_blocks"] == -1
                else f"the top {t['unfreeze_blocks']} stages, top_ layers and head")
        bn = "kept in inference mode" if t["bn_inference"] else "trained"
        parts.append(f"Phase 2: {what} trained up to {t['finetune_epochs']} epochs (Adam "
                     f"{t['finetune_learning_rate']:g}), BatchNorm {bn}.")
    parts.append(f"Early stopping on validation ROC-AUC (patience {t['patience']}), best "
                 f"weights kept; imbalance: {t['imbalance']}.")
    return " ".join(parts)


def _architecture(m: dict) -> str:
    """The model's name and coefficients, a variant's own where the config leaves them unset
    (null width or depth means "the variant's", B0's without a variant, as the builder
    reads them)."""
    variant = m.get("variant")
    published = scaling.get_variant(variant or "b0")
    width = published.width if m.get("width") is None else m["width"]
    depth = published.depth if m.get("depth") is None else m["depth"]
    name = "EfficientNet"
    if variant:
        key = scaling.variant_key(variant)
        name += "-" + ("Lite" + key[4:] if key.startswith("lite") else key.upper())
    return f"{name} (width {width:g}, depth {depth:g})"


def model_card_text(results: dict) -> str:
    """model_card.md: details, intended use, data, metrics with intervals, limitations."""
    cfg: dict[str, Any] = results["config"]
    m = cfg["model"]
    start = {"random": "random initialization (no pretrained weights)",
             "imagenet": "the variant's published ImageNet weights",
             "reference": f"reference Keras weights from `{m['path']}`",
             "keras": f"our model `{m['path']}`"}[m["init"]]
    return "\n".join([
        f"# Model card: {cfg['name']}", "", DISCLAIMER, "",
        "## Model",
        f"{_architecture(m)}, "
        f"{results['model']['params']:,} parameters, input {results['data']['resolution']} px, "
        f"started from {start}. {_recipe(cfg['train'])}", "",
        "## Intended use",
        "Research on transfer learning and model evaluation for medical image classification. "
        "Out of scope: any clinical decision, screening or triage.", "",
        "## Data and splits",
        f"Source `{results['data']['source']}`; classes {results['data']['class_names']}; "
        f"sizes {results['data']['sizes']}. The best epoch was chosen on validation, the "
        f"threshold on {results['threshold']['chosen_on']}; the test split was used once, "
        "for the numbers below.", "",
        "## Metrics (test split)", metrics_table(results), "",
        "## Limitations",
        "Small test sets give wide intervals; performance on other populations, devices and "
        "prevalences is unknown; the threshold trades sensitivity for specificity and must be "
        "re-chosen for a new setting. Grad-CAM maps are coarse and not proof of reasoning.",
        *[f"- {n}" for n in results["notes"]], "",
    ])
