"""Tool call → neutral facts. Nothing in this package knows what is dangerous."""

from gatekeeper.analysis.analyse import AnalysisOptions, analyse_call
from gatekeeper.analysis.facts import ApiCall, Command, Facts, Opaque, Pipeline, Redirect, Via, facts_to_dict

__all__ = [
    "AnalysisOptions",
    "ApiCall",
    "Command",
    "Facts",
    "Opaque",
    "Pipeline",
    "Redirect",
    "Via",
    "analyse_call",
    "facts_to_dict",
]
