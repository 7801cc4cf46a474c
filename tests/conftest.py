"""Shared test configuration.

Tests whose peer may be missing use ``iris_transport.testing.require_peer``,
which skips on a developer machine and fails in CI.
"""
