"""Who may do what with which data: identities, applications and contracts, consent, compliance packs, decisions."""
