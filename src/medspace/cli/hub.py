"""`medspace hub` and `medspace node serve`: the data space's two services from the command line.

Passwords are never arguments (they would sit in the shell's history and the process list): the first admin's
password comes from a file only its owner may read (``--password-file``) or ``MEDSPACE_ADMIN_PASSWORD``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from medspace.cli.common import InputError, clear_errors, console, writing

hub_app = typer.Typer(help="The hub: accounts, applications and contracts, consent, task dispatch, audit log.",
                      no_args_is_help=True)

HubDir = Annotated[Path, typer.Argument(help="The hub's directory (hub.toml, token.key, log/).")]
PASSWORD_ENV = "MEDSPACE_ADMIN_PASSWORD"


def _password(path: Path | None) -> str:
    from medspace.private_files import PrivateFileError, read_private_file

    if path is not None:
        try:
            data = read_private_file(path, "the password file", 4096)
        except PrivateFileError as e:
            raise InputError(str(e)) from None
        return data.decode("utf-8", "replace").strip()
    pw = os.environ.get(PASSWORD_ENV)
    if not pw:
        raise InputError(f"give the admin's password in a file (--password-file, mode 600) or in {PASSWORD_ENV}")
    return pw


@hub_app.command("init")
@clear_errors
def hub_init(
    directory: HubDir,
    origin: Annotated[str, typer.Option(help="The audit log's origin line, e.g. medspace.example.org/hub.")],
    admin: Annotated[str, typer.Option(help="The first admin's username.")],
    space: Annotated[Path | None, typer.Option(help="The space directory (its CA and the hub's certificate).")]
    = None,
    database: Annotated[str | None, typer.Option(help="postgresql://user@host/db for several hub processes; "
                                                      "default: an SQLite file in the directory.")] = None,
    password_file: Annotated[Path | None, typer.Option("--password-file", help="File holding the admin's "
                                                                               "password (mode 600).")] = None,
) -> None:
    """Create a hub directory: configuration, token key, audit log, migrated database, the first admin."""
    from medspace.hub.service import init_hub

    pw = _password(password_file)
    with writing(directory):
        init_hub(directory, origin=origin, admin=admin, password=pw, database=database, space=space)
    console.print(f"hub created in {escape(str(directory))}; start it with `medspace hub serve "
                  f"{escape(str(directory))}`", highlight=False, soft_wrap=True)


@hub_app.command("serve")
@clear_errors
def hub_serve(
    directory: HubDir,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port, printed).")] = 8443,
) -> None:
    """Serve the hub over TLS (nodes with their space certificates) until interrupted."""
    from medspace.hub.serve import serve

    try:
        serve(directory, host=host, port=port,
              announce=lambda url: console.print(f"hub listening on {url}", highlight=False))
    except ValueError as e:
        raise InputError(str(e)) from None


def node_serve(
    name: Annotated[str, typer.Option(help="The hospital's node name (its certificate's name), e.g. h1.")],
    hub: Annotated[str, typer.Option(help="The hub's URL, e.g. https://hub.example.org:8443.")],
    space: Annotated[Path, typer.Option(help="The node's copy of the space (`medspace space export`).")],
    store: Annotated[Path, typer.Option("--store", "-s", help="The node's DuckDB store, its views built.")],
    state: Annotated[Path | None, typer.Option(help="The node's state file (default: <store>.node.sqlite).")] = None,
    region: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code of the node's country.")] = "CN",
    min_cell: Annotated[int, typer.Option(min=1, help="The node's own minimum cell size.")] = 5,
) -> None:
    """Connect this hospital's node to the hub (outbound only) and serve tasks until interrupted."""
    from medspace.node.service import NodeConfig, NodeService

    if not store.is_file():
        raise InputError(f"no store at {store}; create it with `medspace ingest ... --create`")
    svc = NodeService(NodeConfig(name=name, hub_url=hub, space=space, store=store,
                                 state=state or store.with_name(store.name + ".node.sqlite"), region=region,
                                 min_cell=min_cell))
    console.print(f"node {escape(name)} connecting to {escape(hub)}", highlight=False)
    svc.run()
