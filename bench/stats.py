"""Small statistics shared by the benchmark's measuring clients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile of ``values``; None when there are none (a camera that got nothing back)."""
    return float(np.percentile(values, q)) if len(values) else None
