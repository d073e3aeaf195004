"""The himl-ssl plugin's entry module: registrations only, nothing heavy imported here."""

from __future__ import annotations
