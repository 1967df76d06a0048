"""Pure schedule math shared by the families."""

from __future__ import annotations

import numpy as np


def flow_shift_mu(
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """Resolution-dependent time shift ``mu`` of flow-matching models (SD3 / FLUX, Esser et al. 2024 §5.3.2):
    linear in the number of image tokens between (base_seq_len, base_shift) and (max_seq_len, max_shift)."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * m + (base_shift - m * base_seq_len)


def flux_sigmas(steps: int) -> np.ndarray:
    """FLUX's default sigmas before shifting: ``linspace(1, 1/steps, steps)``."""
    return np.linspace(1.0, 1 / steps, steps)
