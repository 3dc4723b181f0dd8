"""Which plant model a server starts with: the one source of truth.

The stored, versioned model is the truth once a store is initialised; edits made through the API are new
versions of it. `plantguard serve --config FILE` applies the file's hierarchy only when the file itself changed
since it was last applied (its SHA-256 is stored with the version it produced), says what that changes, and
refuses to overwrite edits made through the API since then unless told to (`--force-config`). Platform settings
(storage, api, mqtt, ingest...) always come from the file. A stored version that cannot be loaded stops the
start with an error naming the field and the ways out (`--model-version N` starts from an earlier version,
`--force-config` from the file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config
from plantguard.errors import ConfigError, ConfigProblem, NotFound
from plantguard.timeutil import iso


@dataclass(frozen=True)
class ModelFile:
    """The configuration file a server was started with, and what the operator asked for."""

    path: str
    sha256: str
    force: bool = False  # apply the file even over newer edits made through the API
    version: int | None = None  # start from this stored version instead (a rollback)

    @classmethod
    def of(cls, path: str | Path, *, force: bool = False, version: int | None = None) -> "ModelFile":
        return cls(str(path), hashlib.sha256(Path(path).read_bytes()).hexdigest(), force, version)


#: settings that hold a secret a connector needs in clear: the stored model keeps a marker, never the value (the
#: running configuration comes from the file, which the operator protects; a copy of the store reveals nothing)
SECRET_FIELDS = frozenset({"password", "private_key_password", "token", "secret", "api_key"})
REDACTED = "<kept in the configuration file>"


def _redact(obj):
    if isinstance(obj, dict):
        return {k: (REDACTED if k in SECRET_FIELDS and isinstance(v, str) else _redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact(v) for v in obj]
    return obj


def model_document(cfg: PlantConfig) -> str:
    doc = cfg.model_dump(mode="json", exclude_none=True)
    doc = {k: (_redact(v) if k != "sites" else v) for k, v in doc.items()}
    return json.dumps(doc, sort_keys=True)


def _sites(doc: str) -> list:
    try:
        return json.loads(doc).get("sites", [])
    except (ValueError, AttributeError):
        return []


def _has_file_version(store, sha: str, newest: int) -> bool:
    """Whether the newest stored version was produced by the file with this hash."""
    for v in store.model_versions(limit=1):
        return v["version"] == newest and v.get("origin") == "file" and v.get("file_sha") == sha
    return False


def _parse_stored(version: int, doc: str, file_cfg: PlantConfig, how_out: str) -> PlantConfig:
    """The stored hierarchy under the file's platform settings; a clear ConfigError if it cannot be loaded."""
    try:
        data = json.loads(doc)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise ConfigError([ConfigProblem("", f"stored plant model version {version} is unreadable ({e}); {how_out}")]) from None
    try:
        stored = parse_config({"sites": data.get("sites", [])})
    except ConfigError as e:
        problems = [ConfigProblem(p.path, p.message) for p in e.problems]
        problems.append(ConfigProblem("", f"the stored plant model version {version} cannot be loaded by this version of plantguard; {how_out}"))
        raise ConfigError(problems, f"stored model version {version}") from None
    return file_cfg.model_copy(update={"sites": stored.sites})


def describe_change(old_sites: list, new: PlantConfig) -> str:
    """'2 point(s) added, 1 removed, 3 changed' between a stored hierarchy and a configuration."""
    try:
        old_cfg = parse_config({"sites": old_sites})
        old_pts = {t: p.model_dump(mode="json") for t, *_, p in old_cfg.iter_points()}
    except ConfigError:
        old_pts = {}
    new_pts = {t: p.model_dump(mode="json") for t, *_, p in new.iter_points()}
    added = len(new_pts.keys() - old_pts.keys())
    removed = len(old_pts.keys() - new_pts.keys())
    changed = sum(1 for t in new_pts.keys() & old_pts.keys() if new_pts[t] != old_pts[t])
    parts = [f"{added} point(s) added", f"{removed} removed", f"{changed} changed"]
    if not (added or removed or changed):
        parts = ["no point changed (other settings of the hierarchy did)"]
    return ", ".join(parts)


def resolve_model(store, file_cfg: PlantConfig, mf: ModelFile) -> tuple[PlantConfig, tuple | None, list[str]]:
    """(configuration to run, (origin, file_sha) of a version to store or None, messages for the operator)."""
    how_out = (f"start from an earlier version with `plantguard serve --config {mf.path} --model-version N` "
               f"(list them with `plantguard model-history --config {mf.path}`), or apply the file with --force-config")
    if mf.version is not None:
        row = store.load_model(mf.version)
        if row is None:
            raise NotFound(f"no stored plant model version {mf.version} (list them with `plantguard model-history --config {mf.path}`)")
        cfg = _parse_stored(row[0], row[1], file_cfg, "choose another version")
        return cfg, ("rollback", None), [f"plant model: starting from stored version {row[0]} (stored again as the newest version)"]
    newest = store.load_model()
    if newest is None:
        return file_cfg, ("file", mf.sha256), [f"plant model: initialised from {mf.path}"]
    versions = store.model_versions(limit=1000)
    last_file = next((v for v in versions if v.get("origin") == "file"), None)
    file_doc_sites = json.loads(model_document(file_cfg))["sites"]
    if mf.force:
        msg = f"plant model: {mf.path} applied over stored version {newest[0]} (--force-config): {describe_change(_sites(newest[1]), file_cfg)}"
        return file_cfg, ("file", mf.sha256), [msg]
    if last_file is not None and last_file.get("file_sha") == mf.sha256:
        # The file did not change since it was applied: the store (with any edits made through the API) wins.
        cfg = _parse_stored(newest[0], newest[1], file_cfg, how_out)
        edits = sum(1 for v in versions if v["version"] > last_file["version"] and v.get("origin") not in ("file", "code"))
        note = f" ({edits} edit(s) made since {mf.path} was applied as version {last_file['version']})" if edits else ""
        return cfg, None, [f"plant model: stored version {newest[0]}{note}"]
    if _sites(newest[1]) == file_doc_sites:
        return file_cfg, ("file", mf.sha256), [f"plant model: {mf.path} matches stored version {newest[0]}"]
    since = last_file["version"] if last_file is not None else 0
    # edits made by people since the file was last applied: through the API, a rollback, or of unknown origin
    # (stores written before versions recorded it); versions written by tools from a configuration are not
    edits = [v for v in versions if v["version"] > since and v.get("origin") not in ("file", "code")]
    if edits:
        top = edits[0]
        who = f" by {top['actor']}" if top.get("actor") else ""
        raise ConfigError([ConfigProblem("", (
            f"{mf.path} changed, but the stored plant model has {len(edits)} edit(s) made through the API since the file "
            f"was last applied (newest: version {top['version']}{who} at {iso(top['saved_at'])}). Starting from the file "
            f"would discard them. Bring them into the file (GET /api/model?format=yaml on a running server, or "
            f"`plantguard model-history --config {mf.path}`), or start with --force-config to apply the file anyway.")
        )], mf.path)
    msg = f"plant model: {mf.path} changed since version {since}; applied: {describe_change(_sites(newest[1]), file_cfg)}"
    return file_cfg, ("file", mf.sha256), [msg]
