"""The churn sample dataset: generated deterministically (a numpy seed), never downloaded.

Telecom-style customers with a churn label that depends on contract, tenure, charges and support calls,
plus noise, so a linear model reaches an AUC around 0.8 and the threshold check is meaningful.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TABLE = "churn_customers"


def generate(rows: int = 5000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=rows, p=[0.55, 0.25, 0.20])
    tenure = rng.integers(1, 73, size=rows)
    monthly = np.round(rng.normal(70, 25, size=rows).clip(18, 120), 2)
    support_calls = rng.poisson(1.5, size=rows)
    internet = rng.choice(["fiber", "dsl", "none"], size=rows, p=[0.45, 0.4, 0.15])
    paperless = rng.random(rows) < 0.6
    logit = (
        -1.0
        + 1.4 * (contract == "month-to-month")
        - 0.9 * (contract == "two-year")
        - 0.035 * tenure
        + 0.018 * (monthly - 70)
        + 0.45 * support_calls
        + 0.5 * (internet == "fiber")
        + 0.2 * paperless
        + rng.normal(0, 0.8, size=rows)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, rows + 1, dtype=np.int64),
            "contract": contract,
            "tenure_months": tenure.astype(np.int64),
            "monthly_charges": monthly,
            "support_calls": support_calls.astype(np.int64),
            "internet": internet,
            "paperless_billing": paperless,
            "churned": churned,
        }
    )
