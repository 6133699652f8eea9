"""ACD: agents, their state machine, the router (pure) and, later, the dispatcher (AMI)."""
