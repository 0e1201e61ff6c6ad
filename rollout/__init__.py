"""Staged, proven, reversible rollout of HTTP security headers."""

__version__ = "0.1.0"
