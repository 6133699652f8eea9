"""IVR: flows as YAML (loader, with the node schema in schema and YAML marks in yaml_marks),
a pure flow machine (machine), and its AsyncAGI driver (runner)."""
