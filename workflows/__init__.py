"""Journey workflows (one per file) and the toolkit they share.

`JOURNEYS` maps each journey type to its workflow class; the worker registers
them all and the CLI enrols by these names.
"""

from __future__ import annotations

from workflows.journeys.lead_sla import LeadSla
from workflows.journeys.nurture import Nurture
from workflows.journeys.pricing_abandon import PricingAbandon
from workflows.journeys.renewal_countdown import RenewalCountdown
from workflows.journeys.welcome_series import WelcomeSeries
from workflows.toolkit import Journey

JOURNEYS: dict[str, type[Journey]] = {
    WelcomeSeries.name: WelcomeSeries,
    PricingAbandon.name: PricingAbandon,
    RenewalCountdown.name: RenewalCountdown,
    Nurture.name: Nurture,
    LeadSla.name: LeadSla,
}
