"""Journey workflows (one per file) and the toolkit they share.

`JOURNEYS` maps each journey type to its workflow class; the worker registers
them all and the CLI enrols by these names.
"""

from __future__ import annotations

from workflows.lead_sla import LeadSla
from workflows.nurture import Nurture
from workflows.pricing_abandon import PricingAbandon
from workflows.renewal_countdown import RenewalCountdown
from workflows.toolkit import Journey
from workflows.welcome_series import WelcomeSeries

JOURNEYS: dict[str, type[Journey]] = {
    WelcomeSeries.name: WelcomeSeries,
    PricingAbandon.name: PricingAbandon,
    RenewalCountdown.name: RenewalCountdown,
    Nurture.name: Nurture,
    LeadSla.name: LeadSla,
}
