"""The one-shot run's plots: written from a results payload, every scored architecture drawn."""

from __future__ import annotations

import random

from efficientnet_search.search.nas.oneshot.honesty import calibration_ranking
from efficientnet_search.search.nas.oneshot.plots import write_plots


def _run(n=60, calibration=6):
    rng = random.Random(0)
    records = [{"key": f"a{i}", "macs": rng.randint(1, 9) * 1e6, "score": rng.random(),
                "blocks": ["x"], "resolution": 32} for i in range(n)]  # fmt: skip
    entries = [{**r, "algorithm": ("random", "evolution", "tpe", "nsga2")[i % 4]}
               for i, r in enumerate(records)]  # fmt: skip
    picks = sorted(records, key=lambda r: r["macs"])[::n // calibration][:calibration]
    picks = [{**p, "params": p["macs"] / 10} for p in picks]
    standalone = [[0.6 + 0.05 * rng.random(), 0.6 + 0.05 * rng.random()] for _ in picks]
    ranking = calibration_ranking([sum(s) / 2 for s in standalone], picks, None, samples=50,
                                  seed=0)  # fmt: skip
    payload = {"chosen": entries[3], "baseline": entries[5], "calibration": {
        "architectures": [{"supernet": p["score"], "macs": p["macs"], "standalone": s}
                          for p, s in zip(picks, standalone, strict=True)],
        "ranking": ranking}}  # fmt: skip
    return payload, records, entries


def test_both_plots_are_written_as_png(tmp_path):
    payload, records, entries = _run()
    names = write_plots(tmp_path, payload, records, entries)
    assert names == ["scores_vs_macs.png", "calibration.png"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_calibration_axis_says_one_seed_when_there_is_no_seed_spread(tmp_path, monkeypatch):
    from efficientnet_search import plotting
    from efficientnet_search.search.nas.oneshot import plots

    labels = []
    real_save = plotting.save
    monkeypatch.setattr(plots.plotting, "save", lambda fig, path: (
        labels.extend(ax.get_ylabel() for ax in fig.axes), real_save(fig, path))[1])
    payload, records, entries = _run()
    single = payload["calibration"]["architectures"]
    payload["calibration"]["architectures"] = [{**a, "standalone": a["standalone"][:1]}
                                               for a in single]
    write_plots(tmp_path, payload, records, entries)
    assert "stand-alone validation accuracy (1 seed)" in labels
    assert not any("seed std" in label for label in labels if label.startswith("stand-alone"))
