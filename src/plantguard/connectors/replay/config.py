"""Configuration of the replay connector: which file, how it is read, where its columns go, and how fast."""

from __future__ import annotations

import re
import zoneinfo
from typing import Literal

from pydantic import Field, field_validator

from plantguard.connectors.base import ConnectorConfig
from plantguard.connectors.csv.config import CsvOptions

_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


class ReplayConfig(ConnectorConfig):
    type: Literal["replay"] = "replay"
    file: str = Field(description="CSV file to play (UTF-8); read again from the start on every loop")
    device: str = Field(description="plant-model device path site/area/line/asset/device the readings belong to")
    points: dict[str, str] = Field(
        default_factory=dict,
        description="source name -> point id of the device (wide: column header; long: value of the point column); "
        "names not listed are ignored. Empty: every name is used as the point id")
    format: Literal["auto", "long", "wide"] = Field("wide", description="layout of the file, as for import-csv")
    delimiter: str = Field(",", min_length=1, max_length=1, description="field delimiter; ';' for SKAB files")
    timestamp_column: str = Field("timestamp", description="header of the timestamp column; 'datetime' for SKAB files")
    point_column: str = Field("point", description="long format: header of the point name column")
    value_column: str = Field("value", description="long format: header of the value column")
    quality_column: str = Field("quality", description="long format, optional: header of the quality column")
    tz: str = Field("UTC", description="IANA time zone of timestamps written without a UTC offset")
    speed: float = Field(1.0, ge=0, le=1_000_000, description="1: the recorded pace, 10: ten times faster, 0: as fast as possible")
    loop: bool = Field(False, description="start again from the first row when the file ends")
    batch_rows: int = Field(1000, ge=1, le=100_000, description="rows delivered per batch at most")

    @field_validator("device")
    @classmethod
    def _device_path(cls, v: str) -> str:
        parts = v.strip("/").split("/")
        if len(parts) != 5 or not all(_IDENT.match(p) for p in parts):
            raise ValueError("must be a device path site/area/line/asset/device (letters, digits, '_' or '-')")
        return "/".join(parts)

    @field_validator("points")
    @classmethod
    def _point_ids(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [p for p in v.values() if not _IDENT.match(p)]
        if bad:
            raise ValueError(f"point ids must be letters, digits, '_' or '-' (at most 64): {', '.join(map(repr, bad))}")
        dupes = sorted({p for p in v.values() if list(v.values()).count(p) > 1})
        if dupes:
            raise ValueError(f"several source names map to the same point: {', '.join(map(repr, dupes))}")
        return v

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like 'Europe/Paris')") from None
        return v

    def csv_options(self, chunk_rows: int = 10_000) -> CsvOptions:
        return CsvOptions(format=self.format, tz=self.tz, timestamp_column=self.timestamp_column,
                          point_column=self.point_column, value_column=self.value_column,
                          quality_column=self.quality_column, delimiter=self.delimiter, chunk_rows=chunk_rows,
                          source=f"replay:{self.name}")
