"""Privacy engine: disclosure control, secure aggregation (medspace.privacy.secagg) and differential privacy
(medspace.privacy.dp)."""
