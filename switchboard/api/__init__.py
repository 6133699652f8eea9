"""HTTP API, live websocket and web pages (issue 7).

Public entry points: :func:`create_app`, :class:`Services` and its Protocols
(``switchboard.api.services``), :class:`LiveHub`/:class:`LiveMessage` for
pushing events to browsers, and :class:`ApiServer` to run it as a Part.
"""

from switchboard.api.app import HUB, METRICS, ApiOptions, ApiServer, create_app
from switchboard.api.live import Audience, LiveHub, LiveMessage
from switchboard.api.services import Services

__all__ = [
    "HUB",
    "METRICS",
    "ApiOptions",
    "ApiServer",
    "Audience",
    "LiveHub",
    "LiveMessage",
    "Services",
    "create_app",
]
