"""The one shape of vector a node contributes: 1-d integers (counts, or fixed-point codes)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from medspace.privacy.errors import PrivacyError


def integer_vector(values: npt.ArrayLike, error: type[PrivacyError], not_integer: str) -> npt.NDArray[np.integer]:
    """``values`` as a 1-d integer array (booleans as 0/1); ``error`` with ``not_integer`` for other dtypes."""
    x = np.asarray(values)
    if x.ndim != 1:
        raise error("a contribution must be a 1-d vector")
    if x.dtype.kind == "b":
        x = x.astype(np.int64)
    if x.dtype.kind not in "iu":
        raise error(not_integer)
    return x
