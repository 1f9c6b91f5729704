"""The batch's distinct leads: explained once each, never two different leads taken for one."""

from __future__ import annotations

from serving.api.service import distinct_leads


def test_leads_equal_but_for_their_id_share_one_explanation() -> None:
    leads = [
        {"lead_id": "a", "web_visits": 1, "industry": "retail"},
        {"lead_id": "b", "web_visits": 1, "industry": "retail"},
        {"lead_id": None, "web_visits": 1, "industry": "retail"},
        {"lead_id": "c", "web_visits": 2, "industry": "retail"},
    ]
    distinct, which = distinct_leads(leads, "lead_id")
    assert distinct == [leads[0], leads[3]] and which == [0, 0, 0, 1]


def test_values_equal_in_python_but_of_other_types_are_different_leads() -> None:
    leads = [{"lead_id": "x", "flag": value} for value in (1, True, 1.0, "1", None)]
    distinct, which = distinct_leads(leads, "lead_id")
    assert which == [0, 1, 2, 3, 4] and distinct == leads
    other_field = [{"a": 1, "b": None}, {"a": None, "b": 1}]
    assert distinct_leads(other_field, "lead_id")[1] == [0, 1]
