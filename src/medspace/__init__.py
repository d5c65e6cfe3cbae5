"""medspace: a trusted medical data space. Usable, not visible."""

__version__ = "0.1.0"
