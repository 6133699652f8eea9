"""Small pieces the composition root (``app.py``) hands the dialer: calling windows per
campaign, the inbound-first test, and the part that stores ``campaigns/*.yaml`` at start."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from switchboard.campaigns.model import Campaign
from switchboard.campaigns.rules import Window
from switchboard.telephony.windows import CallingWindow

__all__ = ["CampaignSync", "build_dialer", "campaign_windows", "inbound_below"]

log = logging.getLogger("switchboard.campaigns")


def campaign_windows(hours: Any) -> Callable[[Campaign], Window]:
    """A campaign's calling window: its own ranges, time zone and public holidays, plus the
    hotline calendar's extra closed and make-up open days (``hours``: the hotline's
    ``BusinessHours`` or None). Built once per definition."""
    cache: dict[tuple[str, str, bool], CallingWindow] = {}

    def window_for(c: Campaign) -> Window:
        key = (c.window, c.timezone, c.public_holidays)
        w = cache.get(key)
        if w is None:
            w = cache[key] = CallingWindow.build(c.window, timezone=c.timezone, public_holidays=c.public_holidays,
                                                 closed=hours.closed if hours else (),
                                                 open=hours.open if hours else ())
        return w

    return window_for


def inbound_below(metrics: Any, target: float) -> Callable[[], bool]:
    """True while the inbound service level of the current window is under ``target``
    (progressive campaigns then leave the agents to inbound callers)."""

    def below() -> bool:
        sl, _ = metrics.ratios().get("window", (None, None))
        return sl is not None and sl < target

    return below


class CampaignSync:
    """Stores the campaigns of ``campaigns_dir`` the database does not hold yet (paused)."""

    name = "campaign-sync"

    def __init__(self, service: Any, campaigns_dir: str) -> None:
        self.service = service
        self.campaigns_dir = campaigns_dir

    async def start(self) -> None:
        try:
            added = await self.service.sync(self.campaigns_dir)
        except Exception as exc:     # a bad file must not stop the hotline: logged, fixed, restarted
            log.error("campaigns in %s not stored: %s", self.campaigns_dir, getattr(exc, "details", exc))
            return
        if added:
            log.info("campaigns stored from %s (paused): %s", self.campaigns_dir, ", ".join(added))

    async def stop(self) -> None:
        return None


def build_dialer(s: Any, *, pool: Any, ami: Any, policy: Any, acd: Any, hours: Any, clock: Any, book: Any,
                 metrics: Any, entry: Any, registry: Any, lookup: Any, provinces: Any,
                 emit: Callable[[Any, Any], None], sound_prefix: str, voicemail_dir: str) -> Any:
    """The campaign dialer wired to the service's parts: its own flow runner (a contact asking
    for an agent goes through the dialer's enqueue), answered contacts in ``campaigns.context``
    handed to it by the AGI entry, and its metrics."""
    from switchboard.campaigns.dialer import CampaignDialer
    from switchboard.campaigns.metrics import CampaignMetrics
    from switchboard.ivr.runner import IvrRunner

    dialer = CampaignDialer(
        settings=s.campaigns, pool=pool, ami=ami, policy=policy, runner=None, acd=acd,
        window_for=campaign_windows(hours), wall=clock, record=book,
        inbound_below_target=inbound_below(metrics, s.campaigns.inbound_sl_target), trunk=s.ivr.transfer_dial)
    dialer.runner = IvrRunner(
        registry, emit=emit, on_enqueue=dialer.enqueue, lookup=lookup, province_for_caller=provinces.lookup_caller,
        sound_prefix=sound_prefix, voicemail_dir=voicemail_dir, clock=clock)
    entry.handlers[s.campaigns.context] = dialer.on_session
    # a contact left in AGI by a previous process (killed mid-call) is hung up by the reconciliation
    entry.other_contexts = (*entry.other_contexts, s.campaigns.context)
    campaign_metrics = CampaignMetrics(metrics.registry)
    dialer.observe = campaign_metrics.observe
    dialer.observe_preview = campaign_metrics.observe_preview
    campaign_metrics.abandon_ratios = dialer.abandon_ratios
    campaign_metrics.in_flight = dialer.in_flight
    campaign_metrics.dials_source = lambda: dict(dialer.dials_total)
    return dialer
