"""The journeys as a Markdown table (`journeys catalog --markdown`, the README's journey table)."""

from __future__ import annotations

from collections.abc import Iterable

from models.journeys import JourneyDescription

README_START = "<!-- journey-table: written by `journeys catalog --markdown` -->"
README_END = "<!-- /journey-table -->"
HEADER = "| Journey | Started by | Steps | Ends early |\n|---|---|---|---|"


def _cell(lines: Iterable[str]) -> str:
    """Lines as one table cell (`<br>` between them; a `|` would end the cell)."""
    return "<br>".join(line.replace("|", "\\|") for line in lines if line)


def journey_row(journey: JourneyDescription) -> str:
    """One journey's row: name and title, what starts it, its steps, how it ends early."""
    name = [f"`{journey.name}`", f"{journey.title} ({journey.category})"]
    trigger = f"`{journey.trigger}`" if journey.trigger else ""
    steps = [step.label for step in journey.plan] or [journey.summary]
    events = " or ".join(f"`{ending.event}`" for ending in journey.exits if ending.event)
    exits = [f"on {events}" if events else ""]
    exits += [f"`{ending.reason}`: {ending.when}" for ending in journey.exits if not ending.event]
    cells = (name, [trigger, journey.started_by], steps, exits)
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def journey_table(journeys: Iterable[JourneyDescription]) -> str:
    """The table, between the README's markers."""
    rows = "\n".join(journey_row(journey) for journey in journeys)
    return f"{README_START}\n{HEADER}\n{rows}\n{README_END}"


def readme_journey_table(readme: str) -> str:
    """The journey table as the README has it, markers included."""
    start, end = readme.index(README_START), readme.index(README_END)
    return readme[start : end + len(README_END)]
