"""Forgetting: deleting sessions for real, retention policies and payload garbage collection."""
