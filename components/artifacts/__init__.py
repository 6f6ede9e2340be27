"""components.artifacts"""
