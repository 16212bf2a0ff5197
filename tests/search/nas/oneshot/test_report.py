"""The one-shot report's verdict on the supernet's ranking (search/nas/oneshot/report.py)."""

from __future__ import annotations

import pytest

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
