"""Glue between Asterisk and the service's parts: heartbeat, AGI entry points, feature codes."""
