"""Fixtures for real servers on loopback (SeaweedFS for S3 with auth enforced, fakesnow's server mode).

Each starts on free ports, polls for readiness with a deadline, and is stopped by the pid it started.
In CI (CI=true) a missing server binary is an error, never a skip.
"""

from __future__ import annotations
