"""Active/standby instances: leadership, fencing and take-over (docs/ha.md)."""
