"""MQTT connector: JSON telemetry from a broker into the ingest pipeline, acknowledged only once durably stored.

Layout: config.py (settings and topic scheme), client.py (the only module importing paho-mqtt),
subscriber.py (MqttSource, the source the Platform starts). See docs/connectors/mqtt.md.
"""
