"""benchmarks/supernet_probe.py: each row varies one kind of choice from an extreme subnet."""

from __future__ import annotations

import random

import pytest

from benchmarks import supernet_probe

LARGEST = {"stage1_kernel": 5, "stage1_expand": 6, "stage2_kernel": 5, "stage2_expand": 6,
           "resolution": 32}  # fmt: skip
SMALLEST = {"stage1_kernel": 3, "stage1_expand": 1, "stage2_kernel": 3, "stage2_expand": 1,
            "resolution": 32}  # fmt: skip


class Space:
    def largest(self):
        return dict(LARGEST)

    def smallest(self):
        return dict(SMALLEST)

    def sample(self, rng: random.Random):
        return {"stage1_kernel": rng.choice([3, 5]), "stage1_expand": rng.choice([1, 4, 6]),
                "stage2_kernel": rng.choice([3, 5]), "stage2_expand": rng.choice([1, 4, 6]),
                "resolution": 32}  # fmt: skip


def test_each_row_draws_only_its_kind_from_each_extreme():
    seen = []

    def measure(params):  # a supernet that only knows the two extremes
        seen.append(params)
        return 0.9 if params in (LARGEST, SMALLEST) else 0.1

    result = supernet_probe.probe(Space(), measure, draws=3)
    assert result["largest"] == result["smallest"] == 0.9
    assert len(result["random"]) == 3
    assert set(result["one_kind_random"]) == {"kernel", "expand"}
    for row in result["one_kind_random"].values():
        assert len(row["largest"]) == len(row["smallest"]) == 3
    expand_rows = seen[5:11]  # after the 2 extremes and 3 random: expand's, then kernel's
    kernel_rows = seen[11:17]
    bases = [LARGEST] * 3 + [SMALLEST] * 3
    for params, base in zip(expand_rows, bases, strict=True):  # only expansions drawn
        assert all(params[k] == v for k, v in base.items() if not k.endswith("_expand"))
    for params, base in zip(kernel_rows, bases, strict=True):  # only kernels drawn
        assert all(params[k] == v for k, v in base.items() if not k.endswith("_kernel"))
    assert any(p != b for p, b in zip(kernel_rows, bases, strict=True))  # something was drawn


def test_without_a_trained_run_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        supernet_probe.main(["--run_dir", str(tmp_path)])
    assert exit_.value.code == 2 and "no trained one-shot run" in capsys.readouterr().out
