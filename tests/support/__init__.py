"""Helpers and fixtures the test packages share (importable as `support`: pytest puts tests/ on the path)."""
