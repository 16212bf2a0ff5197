"""The torch-free reader of legacy PyTorch checkpoints: real files, refused code, bad files."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

from efficientnet_search.arch.torch_pickle import UnsafeCheckpointError, read_state_dict
from tests.arch.lite_utils import checkpoint_or_skip


def _legacy_header() -> bytes:
    info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(v, protocol=2)
                    for v in (0x1950A86A20F9469CFC6C, 1001, info))


def test_lite0_checkpoint_reads_as_numpy_without_torch():
    state = read_state_dict(checkpoint_or_skip("lite0"))
    assert len(state) == 296
    weights = {k: v for k, v in state.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert sum(v.size for v in weights.values()) == 4_652_008
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert (state["_bn0.running_var"] >= 0).all()  # some channels are dead: variance 0
    assert 0.01 < np.abs(state["_fc.weight"]).mean() < 1.0  # trained values, not zeros


def test_a_global_that_could_run_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = (b"\x80\x02cos\nsystem\nX" + len(f"touch {marker}").to_bytes(4, "little")
               + f"touch {marker}".encode() + b"\x85R.")
    path = tmp_path / "evil.pth"
    path.write_bytes(_legacy_header() + payload)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pth.*os\.system.*refused"):
        read_state_dict(path)
    assert not marker.exists()


def test_truncated_checkpoint_says_so(tmp_path):
    source = checkpoint_or_skip("lite0").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(source[: len(source) // 2])
    with pytest.raises(ValueError, match="cut.pth.*truncated"):
        read_state_dict(path)


def test_not_a_checkpoint_and_zip_format_are_explained(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a legacy PyTorch checkpoint"):
        read_state_dict(text)
    archive = tmp_path / "new_format.pth"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", b"")
    with pytest.raises(ValueError, match="zip-format"):
        read_state_dict(archive)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(tmp_path / "missing.pth")
