"""The one-shot report's verdict on the supernet's ranking (search/nas/oneshot/report.py)."""

from __future__ import annotations

import pytest

from efficientnet_search.search.nas.oneshot import ranking
from efficientnet_search.search.nas.oneshot.report import _gain_verdict


@pytest.mark.parametrize(
    ("gain", "says"),
    [
        ({"gain": 0.4, "ci": (0.1, 0.7), "finding": True}, "ranks better than cost alone"),
        ({"gain": 0.1, "ci": (-0.3, 0.5), "finding": False}, "cost alone ranks as well"),
        ({"gain": -0.9, "ci": (-1.63, -0.25), "finding": False},
         "cost alone ranks **better** than the supernet"),
    ],
)
def test_the_verdict_follows_the_interval(gain, says):
    text = _gain_verdict(gain)
    assert says in text
    assert ("not a finding" in text) == (not gain["finding"])


@pytest.mark.parametrize(("given", "says"), [
    ({"partial_spearman": 0.62, "ci": (0.16, 0.84), "above_zero": True},
     "0.62 [0.16, 0.84]; above 0: the supernet orders architectures that cost alone"),
    ({"partial_spearman": 0.51, "ci": (-0.05, 0.87), "above_zero": False},
     "0.51 [-0.05, 0.87]: not above 0, so nothing beyond cost is shown"),
])
def test_the_given_cost_sentence_follows_its_interval(given, says):
    assert says in ranking.given_cost_sentence(given)


def test_an_undefined_partial_correlation_says_so():
    text = ranking.given_cost_sentence({"partial_spearman": float("nan"),
                                        "ci": (float("nan"), float("nan")), "above_zero": False})
    assert "undefined here" in text and "nan" not in text
