"""The `plantguard` command: a thin shell over the platform's services (plantguard.launch runs one) and the
connectors. Commands by area: serve.py (demo, serve, init, check-config, model-history), data.py (query,
import-csv, export), edge.py (gateway, assess), performance.py (oee, kpi, evaluate); each capability adds its own
(`Capability.commands`: users, audit, devices, ca, keys). The shared options and helpers: common.py.

Commands translate plantguard errors into a message on stderr and an exit status; they hold no logic of their own.
Exit status: 0 success, 1 the command failed (unknown point, invalid input, store unavailable, invalid file given
to check-config), 2 invalid command line or invalid configuration file.
"""

from __future__ import annotations

import sys

import typer

from plantguard import capabilities
from plantguard.cli import data, edge, performance, serve  # noqa: F401 - each registers its commands on the app
from plantguard.cli.common import app

for _cap in capabilities.registered():
    for _name, _sub in (_cap.commands() if _cap.commands is not None else []):
        if isinstance(_sub, typer.Typer):
            app.add_typer(_sub, name=_name)      # a group: `plantguard users add ...`
        else:
            app.command(name=_name)(_sub)        # one command: `plantguard impact NODE...`


def main() -> None:  # pragma: no cover - console entry for `python -m plantguard.cli.main`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
