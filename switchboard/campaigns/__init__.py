"""Outbound campaigns (active care): reaching participants before they call.

* ``model``: the campaign definition, results and modes (pure, frozen);
* ``loader``: ``campaigns/*.yaml`` (and API bodies) -> ``Campaign``, errors as file:line:column;
* ``rules``: retry spacing per result, pacing and the abandon limit (pure);
* ``targets``: contacts from a CSV file, numbers through the number policy (pure);
* ``dialer``: the asyncio shell that claims an attempt in PostgreSQL, then Originates.

SQL lives in ``switchboard.store.campaigns``.
"""
