"""Outer layer: the command line and (later) the HTTP service."""
