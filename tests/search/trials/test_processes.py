"""Local worker processes (search/trials/processes.py): how GPUs are split between them."""

from __future__ import annotations

import os

from efficientnet_search.search.trials import processes


def test_local_workers_get_their_own_gpus_or_share_them_evenly():
    eight = [str(i) for i in range(8)]
    assert processes.gpu_assignments(2, eight) == ["0,1,2,3", "4,5,6,7"]
    assert processes.gpu_assignments(3, ["0", "1", "2"]) == ["0", "1", "2"]
    assert processes.gpu_assignments(2, ["0", "1", "2"]) == ["0", "1,2"]
    assert processes.gpu_assignments(3, ["5", "7"]) == ["5", "7", "5"]  # shared, in turn
    assert processes.gpu_assignments(2, []) == [None, None]  # CPU host: nothing to split


def test_gpu_environment_is_set_while_a_worker_starts_and_restored_after(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5")
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    # The user's CUDA_VISIBLE_DEVICES names the GPUs to split (none on this CPU host).
    monkeypatch.setattr("tensorflow.config.list_physical_devices", lambda kind: [kind] * 3)
    assert processes._local_gpu_ids() == ["2", "3", "5"]
    with processes._gpu_environment("5", shared=True):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
        assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3,5"
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in os.environ
    with processes._gpu_environment("2,3", shared=False):
        assert "TF_FORCE_GPU_ALLOW_GROWTH" not in os.environ  # its own GPUs: TF's default
