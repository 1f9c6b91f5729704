"""The quality-factor vocabulary: the words sales and marketing share to say why a lead is weak."""

from __future__ import annotations

FACTOR_LABELS: dict[str, str] = {
    "icp_fit": "Ideal-customer fit",
    "readiness": "Buying readiness",
    "contactability": "Contact data",
    "timeline": "Decision timeline",
    "authority": "Decision authority",
    "product_fit": "Product fit",
    "other": "Other",
}

FACTORS: tuple[str, ...] = tuple(FACTOR_LABELS)
