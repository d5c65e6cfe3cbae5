"""`medspace deid`: build de-identified views, measure their risk, manage de-identification keys."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from medspace.cli import render
from medspace.cli.common import DEFAULT_STORE, JsonOpt, StoreOpt, clear_errors, console

deid_app = typer.Typer(help="De-identification: policies, views, risk, keys.", no_args_is_help=True)
keys_app = typer.Typer(help="The node's de-identification keys (node key, space linkage key).", no_args_is_help=True)
policy_app = typer.Typer(help="De-identification policies (built-in or TOML files).", no_args_is_help=True)
deid_app.add_typer(keys_app, name="keys")
deid_app.add_typer(policy_app, name="policy")

KeysOpt = Annotated[Path | None, typer.Option("--keys", help="Keyring file (default: beside the store).")]


def _keyring_path(store: Path, keys: Path | None) -> Path:
    from medspace.deid.keys import keyring_path

    return keys or keyring_path(store)


@deid_app.command("apply")
@clear_errors
def apply(
    policy: Annotated[str, typer.Option("--policy", "-p", help="Built-in policy (safe-harbor, pipl, research) "
                                                                "or a policy TOML file.")],
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
    as_of: Annotated[str | None, typer.Option(help="Reference date for ages (YYYY-MM-DD; default today).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build (or rebuild) a policy's de-identified view inside the store, in one transaction."""
    from medspace.deid.apply import apply_policy
    from medspace.deid.errors import DeidError
    from medspace.deid.keys import load_keyring
    from medspace.deid.policy import load_policy
    from medspace.store import Store

    pol = load_policy(policy)
    ref = None
    if as_of is not None:
        try:
            ref = date.fromisoformat(as_of)
        except ValueError:
            raise DeidError("--as-of must be a date YYYY-MM-DD") from None
    ring = load_keyring(_keyring_path(store, keys), create=True)
    with Store(store) as st, render.progress(console, quiet=as_json) as bar:
        task = bar.add_task("de-identifying", total=None)
        report = apply_policy(st, pol, ring, as_of=ref, progress=lambda m: bar.update(task, description=m))
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        render.deid_report(console, report.to_dict())


@deid_app.command("risk")
@clear_errors
def risk(
    view: Annotated[str, typer.Option("--view", "-v", help="The policy whose view to measure, e.g. research.")],
    store: StoreOpt = DEFAULT_STORE,
    qi: Annotated[str | None, typer.Option(help="Comma-separated quasi-identifiers (default: every "
                                                "quasi-identifier column of the patient view).")] = None,
    sensitive: Annotated[str | None, typer.Option(help="Sensitive attribute for l and t, as table.field "
                                                       "(e.g. condition.code): one record per row.")] = None,
    threshold: Annotated[float, typer.Option(help="Risk threshold for the share of records at risk.")] = 0.2,
    as_json: JsonOpt = False,
) -> None:
    """k, l, t, re-identification risk (prosecutor, journalist, marketer) and what each rule changed."""
    from medspace.deid.measure_view import measure_view
    from medspace.store import Store

    with Store(store, read_only=True) as st:
        data = measure_view(st, view, qi=[q.strip() for q in qi.split(",")] if qi else None,
                            sensitive=sensitive, threshold=threshold)
    if as_json:
        console.print_json(json.dumps(data))
    else:
        render.deid_risk(console, data)


@keys_app.command("init")
@clear_errors
def keys_init(store: StoreOpt = DEFAULT_STORE, keys: KeysOpt = None) -> None:
    """Create the node's keyring (a fresh node key) if it does not exist."""
    from medspace.deid.keys import load_keyring

    path = _keyring_path(store, keys)
    existed = path.exists()
    ring = load_keyring(path, create=True)
    console.print(f"{'keyring exists' if existed else 'created keyring'}: {path} "
                  f"(node key version {ring.active.version}; linkage key: {'yes' if ring.linkage else 'no'})")


@keys_app.command("rotate")
@clear_errors
def keys_rotate(
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
    destroy_old: Annotated[bool, typer.Option(help="Forget retired node keys after re-keying.")] = False,
) -> None:
    """Rotate the node key and rebuild every view under the new key (no re-ingest)."""
    from medspace.deid.apply import rotate_node_key
    from medspace.deid.keys import load_keyring
    from medspace.store import Store

    ring = load_keyring(_keyring_path(store, keys))
    with Store(store) as st:
        reports = rotate_node_key(st, ring)
    if destroy_old:
        n = ring.destroy_retired()
        ring.save()
        console.print(f"destroyed {n} retired node key(s)")
    console.print(f"node key now version {ring.active.version}; rebuilt views: "
                  + (", ".join(r.view for r in reports) or "none"))


@keys_app.command("new-linkage")
@clear_errors
def keys_new_linkage(out: Annotated[Path, typer.Argument(help="File to write the space's linkage key to.")]) -> None:
    """Create the space-wide linkage key (once, by the space's key custodian; never give it to the hub)."""
    from medspace.deid.keys import write_linkage_key

    console.print(f"wrote linkage key {out} (fingerprint {write_linkage_key(out)})")


@keys_app.command("import-linkage")
@clear_errors
def keys_import_linkage(
    linkage_file: Annotated[Path, typer.Argument(help="The space's linkage key file.")],
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
) -> None:
    """Install the space's linkage key into this node's keyring."""
    from medspace.deid.keys import fingerprint, load_keyring, read_linkage_key

    ring = load_keyring(_keyring_path(store, keys), create=True)
    ring.linkage = read_linkage_key(linkage_file)
    ring.save()
    console.print(f"linkage key {fingerprint(ring.linkage)} installed")


@policy_app.command("show")
@clear_errors
def policy_show(name: Annotated[str, typer.Argument(help="A built-in policy name or a file.")]) -> None:
    """Print a policy's TOML (copy a built-in one to start your own)."""
    from medspace.deid.policy import resolve

    typer.echo(resolve(name)[1], nl=False)


@policy_app.command("check")
@clear_errors
def policy_check(name: Annotated[str, typer.Argument(help="A built-in policy name or a file.")],
                 as_json: JsonOpt = False) -> None:
    """Check a policy file and print every field's resulting rule."""
    from medspace.deid.policy import load_policy
    from medspace.model.catalogue import TABLES

    pol = load_policy(name)
    rows: list[dict[str, Any]] = []
    for t in TABLES.values():
        for f in t:
            r = pol.rule_for(t.name, f.name)
            excluded = f.level.value == "L1" and not pol.admits_l1(t.name)
            rows.append({"field": f"{t.name}.{f.name}", "action": "excluded (L1)" if excluded else r.action,
                         "options": r.options, "line": r.line})
    for key, r in pol.derived().items():
        rows.append({"field": key, "action": f"derive, {r.action}", "options": r.options, "line": r.line})
    if as_json:
        console.print_json(json.dumps({"policy": pol.name, "rules": rows}))
    else:
        render.policy_rules(console, pol.name, pol.title, rows)
