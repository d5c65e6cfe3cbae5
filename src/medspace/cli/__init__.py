"""The `medspace` command."""
