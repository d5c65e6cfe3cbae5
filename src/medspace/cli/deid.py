"""`medspace deid`: build de-identified views, measure their risk, manage de-identification keys."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from medspace.cli import render
from medspace.cli.common import DEFAULT_STORE, JsonOpt, StoreOpt, clear_errors, console, err
from medspace.cli.stores import WaitOpt, open_store

deid_app = typer.Typer(help="De-identification: policies, views, risk, keys.", no_args_is_help=True)
keys_app = typer.Typer(help="The node's de-identification keys (node key, space linkage key).", no_args_is_help=True)
policy_app = typer.Typer(help="De-identification policies (built-in or TOML files).", no_args_is_help=True)
deid_app.add_typer(keys_app, name="keys")
deid_app.add_typer(policy_app, name="policy")

if TYPE_CHECKING:
    from medspace.deid.keys import Keyring
    from medspace.deid.policy import Policy
    from medspace.store import Store

KeysOpt = Annotated[Path | None, typer.Option("--keys", help="Keyring file (default: beside the store).")]


def _keyring_path(store: Path, keys: Path | None) -> Path:
    from medspace.deid.keys import keyring_path
    from medspace.store.errors import StoreOpenError

    if keys is None and not store.name:  # "", "." or "/": a directory, and no file name to put a keyring beside
        raise StoreOpenError(f"{store} is a directory, not a store")
    return keys or keyring_path(store)


def _note(message: str) -> None:
    err.print(f"note: {escape(message)}", highlight=False, soft_wrap=True)


def _store_for_keys(store: Path) -> Store:
    """The store a keys command works on: it must exist (keyrings are bound to a store's identity)."""
    return open_store(store)


def _keyring_for_apply(st: Store, keys: Path | None, policy: Policy) -> Keyring | None:
    """The store's checked keyring if the policy needs keys (made on first use, never for a store used before)."""
    from medspace.deid.keys import node_keyring

    if not policy.uses_keys:
        return None
    return node_keyring(st, _keyring_path(st.path, keys), create=True, say=_note)


@deid_app.command("apply")
@clear_errors
def apply(
    policy: Annotated[str, typer.Option("--policy", "-p", help="Built-in policy (safe-harbor, pipl, research) "
                                                                "or a policy TOML file.")],
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
    wait: WaitOpt = 0.0,
    as_of: Annotated[str | None, typer.Option(help="Reference date for ages (YYYY-MM-DD; default today).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build (or rebuild) a policy's de-identified view inside the store, in one transaction."""
    from medspace.deid.apply import apply_policy
    from medspace.deid.errors import DeidError
    from medspace.deid.policy import load_policy

    pol = load_policy(policy)
    ref = None
    if as_of is not None:
        try:
            ref = date.fromisoformat(as_of)
        except ValueError:
            raise DeidError("--as-of must be a date YYYY-MM-DD") from None
    # The store first: it must exist (no keyring is made for a mistyped path) and --wait applies to it.
    with open_store(store, wait=wait) as st:
        ring = _keyring_for_apply(st, keys, pol)
        with render.progress(console, quiet=as_json) as bar:
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
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """k, l, t, re-identification risk (prosecutor, journalist, marketer) and what each rule changed."""
    from medspace.deid.measure_view import measure_view

    with open_store(store, read_only=True, wait=wait) as st:
        data = measure_view(st, view, qi=[q.strip() for q in qi.split(",")] if qi else None,
                            sensitive=sensitive, threshold=threshold)
    if as_json:
        console.print_json(json.dumps(data))
    else:
        render.deid_risk(console, data)


@deid_app.command("views")
@clear_errors
def views(store: StoreOpt = DEFAULT_STORE, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """The de-identified views of the store: policy, tables, rows, when built."""
    from medspace.store import deid_views

    with open_store(store, read_only=True, wait=wait) as st:
        data = deid_views(st)
    if as_json:
        console.print_json(json.dumps({"store": str(store), "views": data}))
    else:
        render.deid_views(console, str(store), data)


@keys_app.command("init")
@clear_errors
def keys_init(
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing keyring, or start new keys for a "
                                                         "store that had some: every pseudonym changes.")] = False,
) -> None:
    """Create the node's keyring (a fresh node key) for a store, bound to that store."""
    from medspace.deid.keys import init_keyring

    path = _keyring_path(store, keys)
    with _store_for_keys(store) as st:
        ring, kept = init_keyring(st, path, force=force)
    console.print(f"created keyring {path} (node key version {ring.active.version}; linkage key: "
                  f"{'yes' if ring.linkage else 'no'})", soft_wrap=True)
    if kept is not None:
        _note(f"new keys, new pseudonyms: the replaced keyring is kept at {kept} (delete it when no longer needed)")


@keys_app.command("rotate")
@clear_errors
def keys_rotate(
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
    destroy_old: Annotated[bool, typer.Option(help="Forget retired node keys after re-keying.")] = False,
) -> None:
    """Rotate the node key and rebuild every view under the new key (no re-ingest)."""
    from medspace.deid.apply import rotate_node_key
    from medspace.deid.keys import node_keyring, record_keyring

    with _store_for_keys(store) as st:
        ring = node_keyring(st, _keyring_path(store, keys), say=_note)
        reports = rotate_node_key(st, ring)
        record_keyring(st, ring)
    if destroy_old:
        n = ring.destroy_retired()
        ring.save()
        console.print(f"destroyed {n} retired node key(s)")
    console.print(f"node key now version {ring.active.version}; rebuilt views: "
                  + (", ".join(r.view for r in reports) or "none"))


@keys_app.command("bind")
@clear_errors
def keys_bind(
    store: StoreOpt = DEFAULT_STORE,
    keys: KeysOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the store's pseudonyms become those of the "
                                                     "keyring's keys.")] = False,
) -> None:
    """Bind a keyring to this store on purpose (a keyring moved from another store, or replacing this one's)."""
    from medspace.deid.errors import DeidKeyError
    from medspace.deid.keys import bind_keyring, keyring_path, load_keyring, store_record

    path = _keyring_path(store, keys)
    ring = load_keyring(path)
    with _store_for_keys(store) as st:
        rec = store_record(st)
        if ring.store_id in (None, st.store_id) and rec.fingerprint in (None, ring.fingerprint):
            # Nothing changes for the store's pseudonyms: what first use would do anyway.
            was = ring.store_id
            bind_keyring(st, path)
            console.print(f"keyring {path} is {'already' if was else 'now'} bound to this store "
                          f"(store id {st.store_id})", soft_wrap=True)
            return
        if not yes:
            other = (f" and replaces the keyring this store was used with (fingerprint {rec.fingerprint})"
                     if rec.fingerprint not in (None, ring.fingerprint) else "")
            raise DeidKeyError(f"binding {path} to {store} makes this store's pseudonyms those of that keyring's "
                               f"keys{other}; run again with --yes to do it")
        ring = bind_keyring(st, path)
    console.print(f"bound keyring {path} to {store} (store id {ring.store_id}); its pseudonyms are those of "
                  "the old keys", soft_wrap=True)
    if path != keyring_path(store):
        _note(f"the keyring is not beside the store: pass --keys {path} to deid commands, "
              f"or move it to {keyring_path(store)}")


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
    force: Annotated[bool, typer.Option("--force", help="Replace a different linkage key already installed: "
                                                         "every linkage_id changes.")] = False,
) -> None:
    """Install the space's linkage key into this node's keyring."""
    from medspace.deid.errors import DeidKeyError
    from medspace.deid.keys import fingerprint, node_keyring, read_linkage_key

    key = read_linkage_key(linkage_file)
    with _store_for_keys(store) as st:
        ring = node_keyring(st, _keyring_path(store, keys), create=True, say=_note)
    if ring.linkage == key:
        console.print(f"linkage key {fingerprint(key)} is already installed")
        return
    if ring.linkage is not None and not force:
        raise DeidKeyError(f"the keyring holds another linkage key ({fingerprint(ring.linkage)}); installing "
                           f"{fingerprint(key)} changes every linkage_id: run again with --force to do it")
    ring.linkage = key
    ring.save()
    console.print(f"linkage key {fingerprint(key)} installed")


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
    """Check a policy file and print every field's resulting rule (exit status 1 if the policy has an error)."""
    from medspace.cli.common import Finding
    from medspace.deid.errors import PolicyError
    from medspace.deid.policy import load_policy, resolve
    from medspace.model.catalogue import TABLES

    resolve(name)  # a policy that cannot be read at all is an input error (exit status 2), not a finding
    try:
        pol = load_policy(name)
    except PolicyError as e:
        raise Finding(str(e)) from None
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
