"""What every command of `plantguard` shares: the app, the options declared once, the error handling, and opening
the services over a store (plantguard.launch). The commands themselves: serve.py, data.py, edge.py, performance.py,
and each capability's own.

Commands translate plantguard errors into a message on stderr and an exit status; they hold no logic of their own.
Exit status: 0 success, 1 the command failed (unknown point, invalid input, store unavailable, invalid file given
to check-config), 2 invalid command line or invalid configuration file.
"""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, NoReturn, Optional

import numpy as np
import typer

from plantguard.domain.model import PlantConfig
from plantguard.config import load_config
from plantguard.errors import ConfigError, PlantguardError, StoreUnavailable
from plantguard.services.telemetry import AGGREGATES
from plantguard.timeutil import now_us

EXIT_FAILED = 1
EXIT_USAGE = 2
QUALITY_NAMES = ("good", "uncertain", "bad")
EXPORT_PAGE = 200_000  # raw readings fetched per query while exporting

app = typer.Typer(
    name="plantguard",
    help="Industrial IoT operations platform: ingest, store, alarm and analyse plant telemetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Agg = Enum("Agg", {a: a for a in AGGREGATES}, type=str)  # the aggregates the store implements


# Options shared by the commands that read a store
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Configuration file naming the store.")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Embedded store directory (instead of --config).")]
EndOpt = Annotated[str, typer.Option(help="End (exclusive), same forms as --start.")]


def _start_help(default: str) -> str:
    return f"Start (inclusive): ISO 8601 with offset, epoch ms, or {default} style."


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


class CsvLayout(str, Enum):
    auto = "auto"
    long = "long"
    wide = "wide"


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


# -- error translation at the edge ------------------------------------------------------------------------------------
def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _store_hint(e: StoreUnavailable) -> NoReturn:
    _fail(f"{e}\nIf a plantguard server is running on this store, use its HTTP API instead "
          "(e.g. GET /api/telemetry/raw?point=...), or stop the server first.")


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except StoreUnavailable as e:
        _store_hint(e)
    except PlantguardError as e:
        _fail(str(e))


def _load(path: Path) -> PlantConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _time(text: str, now: int, name: str) -> int:
    from plantguard.timeutil import parse_time  # one parser for the API and the CLI

    with _errors():
        return parse_time(text, now, name)


def _range(start: str, end: str) -> tuple[int, int]:
    now = now_us()
    s, e = _time(start, now, "--start"), _time(end, now, "--end")
    if e <= s:
        _fail("--end must be after --start", EXIT_USAGE)
    return s, e


@contextmanager
def _services(config: Optional[Path], data_dir: Optional[Path]):
    """The services over the store named by --config, or by --data-dir (then its stored plant model is used, so
    opening it changes nothing). No writer thread and no alarm engine: the caller owns the pipeline alone."""
    from plantguard import launch

    if (config is None) == (data_dir is None):
        _fail("give either --config FILE or --data-dir DIR", EXIT_USAGE)
    with _errors():
        if config is not None:
            from plantguard.model_source import ModelFile

            # the same rule as `serve`: the stored model wins unless the file changed (and no API edit is newer)
            run = launch.open_config(_load(config), alarms=False, analytics=False, model_file=ModelFile.of(config))
        else:
            from plantguard.errors import NotFound
            try:
                run = launch.open_data_dir(data_dir)
            except NotFound as e:
                _fail(str(e))
    try:
        with _errors():
            yield run.services
    finally:
        run.stop()


def _iso(ts: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC text, with fractional digits only as far as the values need them."""
    ts = np.asarray(ts, np.int64)
    unit = "s" if (ts % 1_000_000 == 0).all() else "ms" if (ts % 1000 == 0).all() else "us"
    return np.datetime_as_string(ts.astype("datetime64[us]"), unit=unit, timezone="UTC")


# -- commands ---------------------------------------------------------------------------------------------------------
