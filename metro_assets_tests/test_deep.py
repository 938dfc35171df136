"""The deep models' shared ground: device choice, seeding, weights without pickle."""

import numpy as np
import pytest

from metro_assets.deep import array_from_bytes, array_to_bytes, deep_status, weights_from_bytes, weights_to_bytes
from metro_assets.errors import SettingError
from metro_assets.settings import DeepSettings, load_deep_settings


def test_device_setting_is_validated(monkeypatch):
    monkeypatch.setenv("METRO_DEVICE", "tpu")
    with pytest.raises(SettingError, match="METRO_DEVICE='tpu'"):
        load_deep_settings()


def test_switched_off_says_why():
    status = deep_status(DeepSettings(enabled=False))
    assert not status.available and "METRO_DEEP=false" in status.reason


def test_arrays_round_trip_without_pickle():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(array_from_bytes(array_to_bytes(array)), array)
    with pytest.raises(ValueError):
        array_to_bytes(np.array([{"a": 1}], dtype=object))


def test_weights_round_trip_and_cpu_default():
    torch = pytest.importorskip("torch")
    status = deep_status(DeepSettings())
    assert status.available and status.device == "cpu"
    state = {"layer.weight": torch.randn(3, 2), "layer.bias": torch.zeros(3)}
    back = weights_from_bytes(weights_to_bytes(state))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    if not torch.cuda.is_available():
        with pytest.raises(SettingError, match="METRO_DEVICE=cuda"):
            deep_status(DeepSettings(device="cuda"))
