"""Demo and test traffic: SIPp callers and agents against the local stack."""
