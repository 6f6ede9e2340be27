"""components.data"""
