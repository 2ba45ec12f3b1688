"""Single-object trackers: the got10k-toolkit interface, ``init(image, box)``, ``update(image)`` and
``track(img_files, box)``; ``as_rgb`` and ``as_box`` turn what users pass into what trackers read."""

from zoo.tracking.base import BatchTracker, BoxLike, IdentityTracker, ImageLike, Tracker, as_box, as_rgb, as_tracker

__all__ = ["BatchTracker", "BoxLike", "IdentityTracker", "ImageLike", "Tracker", "as_box", "as_rgb", "as_tracker"]
