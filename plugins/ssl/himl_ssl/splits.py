"""The fixed validation split used by every layout without one of its own (tiles, image folders, chest X-rays)."""

from __future__ import annotations

import hashlib

VALIDATION_SHARE = 10  # one in this many slides (or files) validates, when the layout has no split


def is_validation(key: str) -> bool:
    """Whether ``key`` (a slide, patient or file) is in the validation tenth, by a hash that never changes."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % VALIDATION_SHARE == 0
