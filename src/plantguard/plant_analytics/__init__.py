"""Analytics applied to the plant: the processor that runs the configured SPC, anomaly detection and remaining
useful life over every stored batch (processor.py), registered as the analytics capability (capability.py)."""
