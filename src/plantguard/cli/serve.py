"""Running and configuring: demo, serve, init, check-config, model-history."""

from __future__ import annotations

import os
import signal
from importlib.resources import files
from pathlib import Path
from typing import Optional

import typer

from plantguard.cli.common import EXIT_FAILED, EXIT_USAGE, _errors, _fail, _load, app
from plantguard.config import load_config
from plantguard.errors import ConfigError, PlantguardError
from plantguard.timeutil import now_us


@app.command()
def demo(
    duration: Optional[float] = typer.Option(None, help="Stop after this many seconds (default: run until Ctrl-C)."),
    speed: float = typer.Option(1.0, help="Pace of the history backfill in simulated seconds per second; 1 or less: as fast as possible."),
    history: float = typer.Option(6.0, help="Hours of simulated history written before going live."),
    host: str = typer.Option("127.0.0.1", help="Address the demo's HTTP API listens on."),
    port: int = typer.Option(8000, help="Port of the demo's HTTP API."),
    data_dir: Path = typer.Option(Path("./data/demo"), help="Store directory of the demo."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives the same plant behaviour."),
    mqtt_host: Optional[str] = typer.Option(None, help="Publish the simulated devices through this MQTT broker (default: in-process)."),
    mqtt_port: int = typer.Option(1883, help="Port of the MQTT broker given by --mqtt-host."),
    field_devices: bool = typer.Option(True, "--field-devices/--no-field-devices",
                                       help="Serve the PLC over Modbus TCP and the controllers over OPC UA on loopback ports, read by the connectors."),
) -> None:
    """Run a simulated bottling plant with the API, alarms and faults, to explore plantguard."""
    try:
        from plantguard.sim.demo import run_demo
    except ModuleNotFoundError as e:
        if e.name not in ("plantguard.sim.demo", "plantguard.sim"):
            raise
        _fail("the demo is not available in this installation (plantguard.sim.demo is missing)")
    with _errors():
        run_demo(duration=duration, speed=speed, history=history, host=host, port=port,
                 data_dir=str(data_dir), seed=seed, mqtt_host=mqtt_host, mqtt_port=mqtt_port,
                 field_devices=field_devices, private_broker=True)


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="Plant configuration file (YAML)."),
    host: Optional[str] = typer.Option(None, help="Listen address (default: api.host of the configuration)."),
    port: Optional[int] = typer.Option(None, help="Listen port (default: api.port of the configuration)."),
    log_level: str = typer.Option("info", help="Server log level: critical, error, warning, info, debug."),
    force_config: bool = typer.Option(False, "--force-config", help="Apply the file's plant model even over newer edits made through the API."),
    model_version: Optional[int] = typer.Option(None, "--model-version", help="Start from this stored plant model version (see `plantguard model-history`)."),
    login_link: bool = typer.Option(False, "--login-link", help="Print a one-time login link for the admin (valid 24 h)."),
) -> None:
    """Run the platform: ingest, storage, alarms and the HTTP API, until SIGINT or SIGTERM.

    The plant model stored in the data directory is the truth once initialised: edits made through the API
    survive restarts. The file's hierarchy is applied when the file changed since it was last applied, and never
    over newer API edits unless --force-config is given."""
    cfg = _load(config)
    import uvicorn

    from plantguard.api.app import create_app
    from plantguard import launch

    host = host or cfg.api.host
    port = port or cfg.api.port
    received: list[int] = []

    def on_signal(sig, _frame) -> None:
        received.append(sig)

    # uvicorn handles SIGINT/SIGTERM while it serves and re-raises them afterwards; with our handlers in place the
    # re-raised signal lands here instead of killing the process before the platform has stopped.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = False
    try:
        from plantguard.model_source import ModelFile

        tls = bool(cfg.api.tls_cert and cfg.api.tls_key)
        if not _is_loopback(host) and not tls:
            _fail(f"refusing to listen on {host} without TLS: passwords, session cookies and tokens would cross the network "
                  "in clear. Set api.tls_cert and api.tls_key (see docs/security.md#tls), or listen on 127.0.0.1 behind a "
                  "proxy that terminates TLS.")
        with _errors():
            run = launch.open_config(cfg, model_file=ModelFile.of(config, force=force_config, version=model_version))
        for line in run.services.model.messages:
            typer.echo(line, err=True)
        with _errors():
            try:
                password = run.services.accounts.ensure_admin(os.environ.get("PLANTGUARD_ADMIN_PASSWORD"))
            except PlantguardError:
                run.stop()
                raise
        if password is not None:
            typer.echo(f"plantguard: first start: created the user 'admin' with the password {password}\n"
                       "  It is shown only this once: log in and change it, or set PLANTGUARD_ADMIN_PASSWORD before the first start.",
                       err=True)
        if login_link:
            admin = next(u.name for u in run.services.accounts.users() if u.role.value == "admin" and not u.disabled)
            typer.echo(f"plantguard: one-time login link (24 h): http{'s' if tls else ''}://{host}:{port}/login?link="
                       f"{run.services.accounts.login_link(admin)}", err=True)
        try:
            run.start()
            server = uvicorn.Server(uvicorn.Config(create_app(run.services), host=host, port=port, log_level=log_level, lifespan="on",
                                                   ssl_certfile=cfg.api.tls_cert if tls else None,
                                                   ssl_keyfile=cfg.api.tls_key if tls else None))
            n = sum(1 for _ in cfg.iter_points())
            typer.echo(f"plantguard: {n} points, store {run.services.status.store_kind()}, serving on http{'s' if tls else ''}://{host}:{port}", err=True)
            if not received:
                try:
                    server.run()
                except SystemExit:  # uvicorn exits when it cannot bind
                    pass
                started = server.started
            else:
                started = True
        finally:
            run.stop()  # sources stop, the pipeline drains, the store closes
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if not started:
        _fail(f"the HTTP server could not start on {host}:{port} (is the port already in use?)")
    typer.echo("plantguard: stopped cleanly", err=True)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command("model-history")
def model_history(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Configuration file naming the store."),
    data_dir: Optional[Path] = typer.Option(None, help="Embedded store directory (instead of --config)."),
    limit: int = typer.Option(20, help="How many versions, newest first."),
) -> None:
    """List the stored plant model versions: when, from where (file, api, rollback) and by whom."""
    from plantguard.errors import NotFound
    from plantguard.launch import model_versions

    if (config is None) == (data_dir is None):
        _fail("give either --config FILE or --data-dir DIR", EXIT_USAGE)
    with _errors():
        try:
            rows = model_versions(storage=_load(config).storage if config is not None else None, data_dir=data_dir,
                                  limit=limit)
        except NotFound as e:
            _fail(str(e))
    from plantguard.timeutil import iso

    if not rows:
        typer.echo("no plant model stored yet")
        return
    for r in rows:
        origin = r.get("origin") or "unknown"
        extra = f" sha256 {r['file_sha'][:12]}" if r.get("file_sha") else ""
        who = f" by {r['actor']}" if r.get("actor") else ""
        typer.echo(f"version {r['version']:>5}  {iso(r['saved_at'])}  {origin}{extra}{who}")


@app.command()
def init(
    path: Path = typer.Argument(Path("plantguard.yaml"), help="Where to write the configuration."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write the documented example configuration (a small bottling line) to start from."""
    if path.exists() and not force:
        _fail(f"{path} already exists (use --force to overwrite it)")
    text = files("plantguard").joinpath("examples", "plant.yaml").read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}; check it with: plantguard check-config {path}")
    csv_path = path.parent / "historian.csv"
    if not csv_path.exists() or force:
        from plantguard.examples.historian import write_example

        rows = write_example(csv_path, now_us())
        typer.echo(f"wrote {csv_path}: an example historian export of the feed pump, {rows} rows of the last 24 hours in "
                   f"Europe/Paris wall-clock time; import it with: plantguard import-csv {csv_path} --config {path} "
                   "--format wide --tz Europe/Paris")


@app.command("check-config")
def check_config(file: Path = typer.Argument(..., help="Configuration file to validate.")) -> None:
    """Validate a configuration file and list every problem with its field path."""
    try:
        cfg = load_config(file)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_FAILED) from None
    n_dev = sum(1 for _ in cfg.iter_devices())
    n_pts = sum(1 for _ in cfg.iter_points())
    plural = lambda n, w: f"{n} {w}{'' if n == 1 else 's'}"  # noqa: E731
    typer.echo(f"{file}: OK: {plural(len(cfg.sites), 'site')}, {plural(n_dev, 'device')}, {plural(n_pts, 'point')}")
