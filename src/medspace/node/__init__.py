"""The node service: keeps an outbound connection to the hub, re-checks and runs tasks on its de-identified view."""
