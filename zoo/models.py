"""Imports every built-in architecture so that its ``@register_model`` builders run."""

import zoo.baseline  # noqa: F401
