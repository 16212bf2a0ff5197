"""The scaling grid as subnets of one supernet: the grid's own networks, nested, refused
when outside the elastic range, and the supernet's subnet equal to its extracted model."""

from __future__ import annotations

import numpy as np
import pytest

from efficientnet_search.search.grid import costs
from efficientnet_search.search.gridshot.config import load_gridshot_config
from efficientnet_search.search.gridshot.run import check
from efficientnet_search.search.nas.oneshot.elastic import FIELDS, HEAD, RESOLUTION, STEM
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS

QUICK = str(CONFIGS / "grid" / "gridshot_quick.yaml")
SMOKE = str(CONFIGS / "grid" / "gridshot_smoke.yaml")
SIZES = [FIELDS.index(f) for f in ("active", "cin", "cexp", "cse", "cout")]


def test_every_quick_grid_point_is_the_grids_network_nested_in_the_largest():
    config = load_gridshot_config(QUICK, [])
    space, points, _, _ = check(config)
    kinds = {p.kind for p in points}
    assert {"compound", "paper", "depth", "width", "resolution"} <= kinds
    assert space.high == (3.01, 1.77, 1.25)  # the depth- and width-only points set it
    largest = space.encode(space.blocks(space.largest()), max(space.resolutions))
    for p in points:
        params = space.params((p.alpha, p.beta, p.gamma))
        spec = space.spec(space.blocks(params), params[RESOLUTION])
        grid_spec = config.proxy.spec(p.alpha, p.beta, p.gamma, num_classes=10)
        assert costs.signature(spec) == costs.signature(grid_spec), p.key
        rows = space.encode(space.blocks(params), params[RESOLUTION])
        # depth, channels, stem and head are prefixes (the skip is the subnet's own flag)
        assert (rows[:, SIZES] <= largest[:, SIZES]).all(), p.key
    narrow = space.encode(space.blocks(space.smallest()), min(space.resolutions))
    assert narrow[-1, STEM] < largest[-1, STEM] and narrow[-1, HEAD] < largest[-1, HEAD]


def test_a_candidate_outside_the_elastic_range_fails_with_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    err = fails_with_one_line(["gridshot", "--config", QUICK, "--run_dir", str(run_dir),
                               "--set", "supernet.largest=[2.2, 1.77, 1.3]"], capsys)
    assert "a3.01_b1.00_g1.00 (depth)" in err and "supernet.largest" in err, err
    assert "[3.01, 1.77, 1.3]" in err, err
    assert not run_dir.exists()


def test_a_scaled_subnet_of_the_supernet_is_its_extracted_model():
    import tensorflow as tf

    from efficientnet_search.search.nas.oneshot.extract import extract
    from efficientnet_search.search.nas.oneshot.supernet import Supernet

    space, points, _, _ = check(load_gridshot_config(QUICK, []), num_classes=4)
    net = Supernet(space, channels=1, seed=0)
    rng = np.random.default_rng(0)
    params = space.smallest()  # narrower stem, head, stages; fewer blocks; smaller side
    blocks, side = space.blocks(params), params[RESOLUTION]
    choices = space.encode(blocks, side)
    net.recalibrate([rng.uniform(0, 255, [8, side, side, 1]).astype(np.float32)
                     for _ in range(2)], choices)  # fmt: skip
    images = rng.uniform(0, 255, [4, side, side, 1]).astype(np.float32)
    model = extract(net, blocks, side)
    expected = net.infer(images, choices).numpy()
    np.testing.assert_allclose(model(tf.constant(images), training=False).numpy(), expected,
                               atol=1e-5)
    assert model.get_layer("stem_conv").get_weights()[0].shape[-1] < space.stem
    assert model.get_layer("top_conv").get_weights()[0].shape[-1] < space.head


@pytest.mark.parametrize("override, message", [
    ("supernet.top=0", "supernet.top must be >= 1"),
    ("supernet.largest=[1.2, 1.1]", "supernet.largest needs 3 values"),
    ("supernet.step=0", "supernet.step must be > 0"),
])
def test_bad_supernet_settings_fail_with_one_line(tmp_path, capsys, override, message):
    err = fails_with_one_line(["gridshot", "--config", SMOKE, "--run_dir",
                               str(tmp_path / "run"), "--set", override], capsys)
    assert message in err, err
    assert not (tmp_path / "run").exists()


def test_the_quick_config_scores_the_quick_grids_proxy():
    from efficientnet_search.search.grid.run import load_grid_config

    ours = load_gridshot_config(QUICK, [])
    grid = load_grid_config(str(CONFIGS / "grid" / "fashion_mnist_quick.yaml"), [], None)
    assert (ours.proxy, ours.data) == (grid.proxy, grid.data)
    assert (ours.search.repeats, ours.search.seed) == (grid.search.repeats, grid.search.seed)
    same = ("alpha_range", "beta_range", "gamma_range", "target", "cost", "single_dimension")
    assert all(getattr(ours.candidates, k) == getattr(grid.candidates, k) for k in same)
    assert ours.supernet.step == 0.05 < grid.candidates.step


def test_sample_by_resolution_draws_every_side_equally_and_point_keeps_the_grids_mix():
    import collections
    import random

    from efficientnet_search import config as config_lib

    draws = {}
    for sample_by in ("point", "resolution"):
        space, _, _, _ = check(load_gridshot_config(QUICK, [f"supernet.sample_by={sample_by}"]))
        rng = random.Random(0)
        sides = collections.Counter(space.sample(rng)[RESOLUTION] for _ in range(1200))
        draws[sample_by] = {side: count / 1200 for side, count in sides.items()}
    sides = draws["resolution"]
    assert len(sides) == 6 and all(abs(share - 1 / 6) < 0.05 for share in sides.values())
    assert draws["point"][32] > 0.7  # 75 of the quick grid's 94 points are at the base side
    with pytest.raises(config_lib.ConfigError, match="supernet.sample_by must be one of"):
        load_gridshot_config(QUICK, ["supernet.sample_by=network"])
