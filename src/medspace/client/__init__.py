"""The Python client of a medspace hub (`HubClient`): sign in, apply, decide, run tasks, manage consent."""

from medspace.client.hub import ClientError, HubClient

__all__ = ["ClientError", "HubClient"]
