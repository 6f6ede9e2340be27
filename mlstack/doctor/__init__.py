"""mlstack.doctor"""
