"""mlstack.pipeline"""
