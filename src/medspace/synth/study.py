"""The built-in study: metformin for type 2 diabetes, with a known response rate per age band and hospital.

The true probability that a treated patient responds is the base rate of their age band (age in
completed years at the medication's start date) plus the hospital's offset, clipped to [0.05, 0.95].
Each metformin row records the drawn outcome in its `response` field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from medspace.model.extensions import TREATMENT_RESPONSE

STUDY_BANDS: tuple[tuple[str, int, int], ...] = (
    ("18-34", 18, 35), ("35-49", 35, 50), ("50-64", 50, 65), ("65-79", 65, 80), ("80+", 80, 200),
)
BASE_RESPONSE: tuple[float, ...] = (0.80, 0.72, 0.62, 0.50, 0.38)
TREATED_SHARE = 0.85  # of adult type 2 diabetes patients, who get the study drug
RESPONDER, NON_RESPONDER = "responder", "non-responder"
RESPONSE_EXTENSION = TREATMENT_RESPONSE  # the FHIR connector reads it into medication.response

# Base type 2 diabetes prevalence by age at the reference date: <18, 18-34, 35-49, 50-64, 65-79, 80+.
T2D_AGE_EDGES = (18, 35, 50, 65, 80)
T2D_PREVALENCE = (0.002, 0.03, 0.08, 0.16, 0.22, 0.20)


def band_of(age: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Study age band index per age (-1 under 18)."""
    return np.asarray(np.digitize(age, [b[1] for b in STUDY_BANDS]) - 1, dtype=np.int64)


def response_probability(band: int, offset: float) -> float:
    """The true response probability of an age band at a hospital with the given offset."""
    return float(min(0.95, max(0.05, BASE_RESPONSE[band] + offset)))


def t2d_prevalence(age: npt.NDArray[Any], factor: float) -> npt.NDArray[np.float64]:
    """Probability of type 2 diabetes per age, scaled by the hospital's factor."""
    return np.asarray(np.array(T2D_PREVALENCE)[np.digitize(age, T2D_AGE_EDGES)] * factor, dtype=np.float64)
