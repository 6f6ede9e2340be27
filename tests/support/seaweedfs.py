"""Test support: seaweedfs server fixtures (see docs/testing.md)."""

from __future__ import annotations
