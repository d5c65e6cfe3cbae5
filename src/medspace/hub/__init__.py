"""The hub: participants and accounts, applications and contracts, consent registry, task dispatch, audit log."""
