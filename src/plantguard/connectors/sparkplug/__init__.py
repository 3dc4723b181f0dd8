"""Sparkplug B connector: edge nodes and devices over MQTT (protobuf payloads) into the ingest pipeline."""
