"""Simulated plant and fault injection: the demo bottling line (plant), signal models (signals), faults, the
paced simulator with its sinks (runner) and `plantguard demo` (demo). See docs/simulator.md."""
