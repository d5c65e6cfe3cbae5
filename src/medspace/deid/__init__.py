"""De-identification: policies, transforms, pseudonyms, generalisation, k-anonymity family, risk, notes."""
