"""mlstack.artifacts"""
