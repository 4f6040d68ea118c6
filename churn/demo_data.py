"""Deterministic demo data shaped like the spec's feature group (Telco-like churn).

Churn follows the patterns of real telecom data: month-to-month contracts, short
tenure, high charges, fiber internet, electronic checks and missing support
services raise it; long contracts and automatic payments lower it. A logistic
model with noise keeps a good classifier's ROC-AUC well inside (0.5, 1.0).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from churn.schema import DEFAULT_TARGET, EVENT_TIME, ID_COLUMN, customer_key

CONTRACTS = ["Month-to-month", "One year", "Two year"]
PAYMENTS = ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"]
INTERNET = ["DSL", "Fiber optic", "No"]
FEATURE_COLUMNS = [
    "age",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract_type",
    "payment_method",
    "internet_service",
    "phone_service",
    "multiple_lines",
    "online_security",
    "tech_support",
    "device_protection",
]
DEMO_EVENT_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def generate_customers(n: int = 5000, seed: int = 42, first_id: int = 1) -> pd.DataFrame:
    """Return ``n`` customers with the spec's columns, ``churn`` (0/1) and ``event_time``.

    The same ``n`` and ``seed`` always give the same frame.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    contract = rng.choice(CONTRACTS, n, p=[0.55, 0.21, 0.24])
    # Longer contracts go with longer tenure, as in real books of customers.
    tenure_scale = np.select([contract == "Month-to-month", contract == "One year"], [14.0, 30.0], 45.0)
    tenure = np.clip(rng.exponential(tenure_scale) + 1, 1, 72).astype(int)
    internet = rng.choice(INTERNET, n, p=[0.34, 0.44, 0.22])
    phone = rng.choice(["Yes", "No"], n, p=[0.9, 0.1])
    has_net = internet != "No"

    def service(p_yes: float) -> np.ndarray:
        values = np.where(rng.random(n) < p_yes, "Yes", "No").astype(object)
        values[~has_net] = "No internet service"
        return values

    online_security, tech_support, device_protection = service(0.36), service(0.37), service(0.44)
    multiple_lines = np.where(rng.random(n) < 0.47, "Yes", "No").astype(object)
    multiple_lines[phone == "No"] = "No phone service"
    payment = rng.choice(PAYMENTS, n, p=[0.34, 0.23, 0.22, 0.21])
    base = np.select([internet == "Fiber optic", internet == "DSL"], [70.0, 45.0], 20.0)
    monthly = base + 5.0 * (multiple_lines == "Yes") + 5.0 * (device_protection == "Yes") + rng.normal(0, 8, n)
    monthly = np.round(np.clip(monthly, 18.0, 120.0), 2)
    total = np.round(monthly * tenure * rng.normal(1.0, 0.03, n), 2)
    age = np.clip(rng.normal(45, 15, n), 18, 90).astype(int)

    logit = (
        -1.9
        + 1.6 * (contract == "Month-to-month")
        - 0.9 * (contract == "Two year")
        - 0.045 * tenure
        + 0.018 * (monthly - 65.0)
        + 0.7 * (internet == "Fiber optic")
        + 0.6 * (payment == "Electronic check")
        + 0.45 * (online_security == "No")
        + 0.45 * (tech_support == "No")
        + 0.012 * (age - 45)
        + rng.normal(0, 0.6, n)
    )
    churn = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)

    frame = pd.DataFrame(
        {
            ID_COLUMN: [customer_key(first_id + i) for i in range(n)],
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total.astype(float),
            "contract_type": contract,
            "payment_method": payment,
            "internet_service": internet,
            "phone_service": phone,
            "multiple_lines": multiple_lines,
            "online_security": online_security,
            "tech_support": tech_support,
            "device_protection": device_protection,
            DEFAULT_TARGET: churn,
        }
    )
    # A few missing values, as real exports have (new customers without a total yet...).
    frame.loc[rng.random(n) < 0.01, "total_charges"] = np.nan
    frame.loc[rng.random(n) < 0.005, "payment_method"] = None
    frame.loc[rng.random(n) < 0.005, "tech_support"] = None
    frame[EVENT_TIME] = [
        (DEMO_EVENT_TIME + timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in rng.integers(0, 86_400 * 30, n)
    ]
    return frame
