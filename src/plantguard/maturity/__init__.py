"""Process maturity from live evidence, alarm-system performance, phased rollouts with statistical gates, and the improvement loop."""
