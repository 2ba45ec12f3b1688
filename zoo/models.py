"""Imports every built-in architecture so that its ``@register_model`` builders run."""

import zoo.actor_action  # noqa: F401
import zoo.baseline  # noqa: F401
import zoo.i3d  # noqa: F401
import zoo.lang_tracker  # noqa: F401
import zoo.o3n  # noqa: F401
import zoo.sint  # noqa: F401
import zoo.tracking  # noqa: F401
import zoo.two_in_one  # noqa: F401
import zoo.two_stream  # noqa: F401
