"""What every PyTorch model here shares: is PyTorch there, which device, seeding, weights without pickle.

PyTorch is the optional extra ``[deep]`` (``pip install -e '.[deep]'``): the
core install and ``make demo`` run without it and say in one line that the
deep parts are off. Nothing here imports torch at module import time, so the
rest of the platform imports this module freely.

Examples
--------
>>> from metro_assets.settings import DeepSettings
>>> status = deep_status(DeepSettings(enabled=False))
>>> status.available, status.reason
(False, 'deep models off: METRO_DEEP=false')
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass

from metro_assets.errors import SettingError
from metro_assets.settings import DeepSettings

#: The one line users see when the deep parts cannot run because PyTorch is missing.
MISSING_TORCH = "deep models off: PyTorch is not installed (pip install -e '.[deep]')"


@dataclass(frozen=True)
class DeepStatus:
    """Can the deep models run here, and on which device?"""

    available: bool
    device: str = "cpu"
    reason: str = ""


def deep_status(settings: DeepSettings) -> DeepStatus:
    """Whether the deep models run, on which device, or the one-line reason they do not.

    ``METRO_DEVICE=cuda`` without a GPU is the user's mistake and raises a
    :class:`SettingError`; ``auto`` quietly falls back to the CPU.
    """
    if not settings.enabled:
        return DeepStatus(False, reason="deep models off: METRO_DEEP=false")
    if importlib.util.find_spec("torch") is None:
        return DeepStatus(False, reason=MISSING_TORCH)
    import torch

    has_gpu = torch.cuda.is_available()
    if settings.device == "cuda" and not has_gpu:
        raise SettingError("METRO_DEVICE=cuda but PyTorch sees no GPU here (use cpu or auto)")
    device = "cuda" if settings.device == "cuda" or (settings.device == "auto" and has_gpu) else "cpu"
    return DeepStatus(True, device=device)


def seed_torch(seed: int) -> None:
    """Make PyTorch deterministic for ``seed`` (same seed, same weights, on the CPU)."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def weights_to_bytes(state: dict) -> bytes:
    """A model's ``state_dict`` as safetensors bytes (no pickle), for a BLOB column."""
    from safetensors.torch import save

    return save({name: tensor.detach().cpu().contiguous() for name, tensor in state.items()})


def weights_from_bytes(blob: bytes) -> dict:
    """The ``state_dict`` :func:`weights_to_bytes` stored (tensors on the CPU)."""
    from safetensors.torch import load

    return load(bytes(blob) if not isinstance(blob, bytes) else blob)


def array_to_bytes(array) -> bytes:
    """A NumPy array as ``.npy`` bytes without pickle (object arrays are refused)."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def array_from_bytes(blob: bytes):
    """The array :func:`array_to_bytes` stored."""
    import numpy as np

    return np.load(io.BytesIO(bytes(blob)), allow_pickle=False)
