"""Servers the integration tests run as subprocesses."""
