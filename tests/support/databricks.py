"""Test support: databricks server fixtures (see docs/testing.md)."""

from __future__ import annotations
