"""Options of the CSV importer (historian exports). Validated once, before any byte of the file is read."""

from __future__ import annotations

import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["auto", "long", "wide"] = Field(
        "auto", description="long: one reading per row (timestamp, point, value[, quality]); wide: a timestamp then one "
        "column per point; auto: long when the header has both the point and the value column, else wide")
    tz: str | None = Field(None, description="IANA time zone for timestamps written without a UTC offset; without it such rows are refused")
    timestamp_column: str = Field("timestamp", description="header of the timestamp column (matched case-insensitively)")
    point_column: str = Field("point", description="long format: header of the point name column")
    value_column: str = Field("value", description="long format: header of the value column")
    quality_column: str = Field("quality", description="long format, optional: good/uncertain/bad or 0/1/2; empty means good")
    delimiter: str = Field(",", min_length=1, max_length=1)
    point_prefix: str | None = Field(None, description="prepended with '/' to every point name, e.g. the device path 'site/area/line/asset/device'")
    chunk_rows: int = Field(100_000, ge=1, le=5_000_000, description="at most this many CSV rows go to the pipeline per write")
    source: str = Field("csv", description="source name recorded with dead letters")

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like 'Europe/Paris')") from None
        return v

    @field_validator("point_prefix")
    @classmethod
    def _strip_prefix(cls, v: str | None) -> str | None:
        return v.strip("/") or None if v is not None else None
