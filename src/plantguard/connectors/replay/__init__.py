"""Replay connector: plays a recorded CSV file as a live device, at the recorded pace or faster."""

from plantguard.connectors.replay.config import ReplayConfig
from plantguard.connectors.replay.connector import ReplayConnector

__all__ = ["ReplayConfig", "ReplayConnector"]
