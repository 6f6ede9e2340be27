"""ACME platform conventions shared by the team's Pulumi programs: tags, GPU pool catalogue, config reading."""

from acme_platform.conventions import GPU_POOLS, PlatformConfig, team_tags

__all__ = ["GPU_POOLS", "PlatformConfig", "team_tags"]
