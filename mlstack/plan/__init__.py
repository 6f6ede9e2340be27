"""Offline planning: run a stack's Pulumi program under the mock runtime and report on what it builds.

Nothing here is imported by ``import mlstack``; pulumi loads only when a plan runs.
"""
