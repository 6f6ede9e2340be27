"""mlstack.data"""
