"""components.compute"""
