"""Loading the templates for the QA commands, naming the step a broken template belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rules.templates import TemplateCatalog, TemplateError
from starter.qa.catalog import MessageStep

if TYPE_CHECKING:
    from workflows.toolkit import Journey


def load_catalog(
    directory: Path, journey: type[Journey], steps: Sequence[MessageStep]
) -> TemplateCatalog:
    """The validated template catalogue of `directory`.

    The catalogue renders every template when it loads (the worker's start-up
    check); when one of `journey`'s templates fails, the error names its step.

    Raises:
        TemplateError: `<journey>/<step> (template …): <the file and what is wrong>`.
    """
    try:
        return TemplateCatalog(directory)
    except TemplateError as error:
        for step in steps:
            suffix = ".sms.toml" if step.channel == "sms" else ".toml"
            if str(directory / f"{step.template}{suffix}") in str(error):
                raise TemplateError(
                    f"{journey.name}/{step.id} (template {step.template}): {error}"
                ) from error
        raise
