"""Privacy engine: disclosure control, secure aggregation (medspace.privacy.secagg) and, later, differential privacy."""
