"""Benchmarks of whole agent programs: traces, workloads, the simulator, live replay."""
