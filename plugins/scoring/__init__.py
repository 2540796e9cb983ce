"""Scoring: explainable rule-based and predictive lead scoring (metadata only)."""

from crmcore import Plugin

plugin = Plugin(name="scoring", version="0.1.0", summary="Explainable rule-based and predictive lead scoring.")
