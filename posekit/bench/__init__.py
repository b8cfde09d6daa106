"""Benchmarks behind `posekit bench`: each module returns a JSON-able dict and renders it as a table."""
