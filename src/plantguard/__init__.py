"""plantguard: an Industrial IoT operations platform.

Data flows one way: connector -> ingest pipeline -> store + processors -> alarms -> api/web.
"""

__version__ = "0.1.0"
