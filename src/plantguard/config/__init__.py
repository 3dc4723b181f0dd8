"""Configuration above the domain: reading documents (loading.py), the capability checks of the plant model
(checks.py) and the composition of the whole file (plant.py)."""

from plantguard.config.loading import clean_msg, loc_to_path, parse_yaml, read_yaml_file, validation_problems
from plantguard.config.plant import dump_config, load_config, parse_config

__all__ = ["clean_msg", "dump_config", "load_config", "loc_to_path", "parse_config", "parse_yaml", "read_yaml_file",
           "validation_problems"]
