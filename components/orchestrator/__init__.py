"""components.orchestrator"""
