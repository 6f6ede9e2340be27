"""mlstack.plan.policy"""
