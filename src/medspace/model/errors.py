"""Errors of the clinical model."""

from __future__ import annotations


class ModelError(Exception):
    """Base of the model's errors."""


class ValueFormatError(ModelError, ValueError):
    """A value (date, number, code) does not have the form the model needs."""
