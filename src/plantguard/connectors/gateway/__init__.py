"""The edge gateway: connectors write to a durable disk queue (GatewayQueue, a ReadingSink); a forwarder
sends the queued batches in order to a central plantguard and deletes them only once the central side confirms
their durable write. See docs/gateway.md."""

from plantguard.connectors.gateway.queue import GatewayQueue, QueueFull

__all__ = ["GatewayQueue", "QueueFull"]
