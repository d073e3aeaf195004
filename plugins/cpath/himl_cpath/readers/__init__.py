"""Slide reader backends; each module imports its library at import time, so load them through ``open_slide``."""
