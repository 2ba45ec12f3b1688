"""Single-object trackers: the got10k-toolkit interface, ``init(image, box)`` and ``update(image)``."""

from zoo.tracking.base import IdentityTracker, Tracker, as_tracker

__all__ = ["IdentityTracker", "Tracker", "as_tracker"]
