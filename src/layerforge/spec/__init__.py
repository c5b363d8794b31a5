"""Specs: schema, safe YAML loading, overrides and error formatting."""

from .load import apply_override, load_spec
from .schema import Spec

__all__ = ["Spec", "load_spec", "apply_override"]
