"""CSV connector: streaming import of historian exports (long or wide format) through the ingest pipeline."""

from plantguard.connectors.csv.config import CsvOptions
from plantguard.connectors.csv.importer import ImportReport, RowProblem, import_csv, read_csv

__all__ = ["CsvOptions", "ImportReport", "RowProblem", "import_csv", "read_csv"]
