"""Federated computation: what a node computes on its de-identified view and how the hub combines the answers."""
