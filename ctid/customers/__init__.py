"""ctid.customers: the customer book shared by routing, the IVR and screen pops (no SQL here: see `.book`;
a customer's whole history: `.history.customer_history`)."""

from ctid.customers.cases import CaseKind, CaseRecord, CaseStatus, CaseStep
from ctid.customers.identify import CallerDirectory, Identification, Lookup
from ctid.customers.phones import MIN_SUFFIX_DIGITS, numbers_match, phone_digits, phone_key
from ctid.customers.value import (
    DEFAULT_WEIGHTS,
    CustomerRecord,
    CustomerValue,
    Lifecycle,
    Tier,
    ValueWeights,
    assign_tiers,
    tier_counts,
    value_score,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "MIN_SUFFIX_DIGITS",
    "CallerDirectory",
    "CaseKind",
    "CaseRecord",
    "CaseStatus",
    "CaseStep",
    "CustomerRecord",
    "CustomerValue",
    "Identification",
    "Lifecycle",
    "Lookup",
    "Tier",
    "ValueWeights",
    "assign_tiers",
    "numbers_match",
    "phone_digits",
    "phone_key",
    "tier_counts",
    "value_score",
]
