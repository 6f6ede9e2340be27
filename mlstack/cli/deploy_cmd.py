"""mlstack up|preview|destroy|outputs through the Pulumi Automation API."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
