"""Privacy engine: disclosure control (and, later, differential privacy and secure aggregation)."""
