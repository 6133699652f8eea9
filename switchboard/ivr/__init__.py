"""IVR: flows as YAML (loader), a pure flow machine (machine), and its AsyncAGI driver (runner)."""
