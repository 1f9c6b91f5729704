"""A synthetic B2B CRM history whose ground truth is known.

Outcomes come from a known log-odds model built from per-factor effects, so tests can check that a
trained model recovers the truth and that explanations name the right factor. The history has what
makes real lead data hard: missing data that depends on the source, conversions that arrive weeks
after the lead (the newest leads are not mature yet), a leaky field filled in by sales, and drift
(the source mix shifts, a product and its campaign launch, a region's effect changes part-way).

Keyword options reproduce the shapes of real exports the product learns badly from, so tests can
show each failure: slow conversions (months after first contact), a base rate that jumps in the last
two quarters, and a column that leaks the outcome under an innocent name. Their defaults give
today's history byte for byte, and each option draws no extra random numbers before the ones the
default history uses, so everything else in a history stays the same when an option is turned on.

Everything is vectorised numpy: one million leads take seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import DataError
from features.factors import FACTORS
from features.schema import LeadSchema, load_schema

DEFAULT_END = "2026-10-01"
BASE_RATE = 0.09
QUALITY_FACTORS = tuple(f for f in FACTORS if f != "other")

SOURCES = (
    "web_form",
    "organic_search",
    "paid_search",
    "referral",
    "webinar",
    "trade_show",
    "purchased_list",
    "partner",
)
_MIX_START = np.array([0.24, 0.16, 0.08, 0.09, 0.09, 0.14, 0.08, 0.12])
_MIX_END = np.array([0.14, 0.12, 0.20, 0.06, 0.07, 0.10, 0.24, 0.07])
_SOURCE_INTEREST = {
    "web_form": 0.3,
    "organic_search": 0.2,
    "paid_search": 0.0,
    "referral": 0.7,
    "webinar": 0.4,
    "trade_show": -0.2,
    "purchased_list": -1.0,
    "partner": 0.3,
}
_CAMPAIGNS = {
    "web_form": ("website-contact", "newsletter-signup"),
    "organic_search": ("seo-blog",),
    "paid_search": ("search-brand", "search-generic"),
    "referral": ("customer-referral",),
    "webinar": ("webinar-series",),
    "trade_show": ("expo-spring", "expo-autumn", "summit-europe"),
    "purchased_list": ("list-vendor-a", "list-vendor-b"),
    "partner": ("partner-network",),
}
LAUNCH_CAMPAIGN = "ai-assistant-launch"

# Sales owners, for the shared KPI report. Each is handed leads and closes them with their own skill:
# the odds multiplier on converting, against the pool. Two are planted so tests know the answer:
# STRONG_OWNER converts better than expected although handed weaker leads (a raw conversion rate
# would blame them), WEAK_OWNER worse although handed stronger ones (a raw rate would flatter them).
OWNERS = ("ana.silva", "ben.okafor", "chen.wei", "dana.kovac", "eli.haddad", "fay.moreau")
STRONG_OWNER, WEAK_OWNER = "ana.silva", "ben.okafor"
OWNER_SKILL = {STRONG_OWNER: 3.0, WEAK_OWNER: 0.35}
OWNER_TILT = {STRONG_OWNER: -0.5, WEAK_OWNER: 0.5}  # log-weight per unit of the lead's true log-odds

# The true effects, in log-odds, before centring. Missing values have their own effect.
INDUSTRY = {
    "software": 0.6,
    "financial_services": 0.4,
    "healthcare": 0.25,
    "manufacturing": 0.1,
    "retail": -0.3,
    "education": -0.6,
    "government": -0.7,
    "other": -0.4,
}
INDUSTRY_P = [0.22, 0.12, 0.1, 0.12, 0.12, 0.08, 0.06, 0.18]
COUNTRY = {
    "US": 0.3,
    "GB": 0.25,
    "DE": 0.2,
    "FR": 0.1,
    "CA": 0.25,
    "NL": 0.2,
    "AU": 0.15,
    "IN": -0.7,
    "BR": -0.7,
    "JP": -0.3,
    "MX": -0.5,
    "ZA": -0.5,
}
COUNTRY_AFTER_EXPANSION = {"IN": 0.35, "BR": 0.35}
COUNTRY_P = [0.33, 0.1, 0.08, 0.06, 0.06, 0.03, 0.04, 0.11, 0.08, 0.04, 0.04, 0.03]
TIMELINE = {"0-3 months": 0.9, "3-6 months": 0.4, "6-12 months": -0.3, "12+ months": -1.0}
SENIORITY = {
    "c_level": 0.7,
    "vp": 0.6,
    "director": 0.4,
    "manager": 0.1,
    "individual_contributor": -0.5,
    "student": -1.5,
}
SENIORITY_P = [0.06, 0.08, 0.15, 0.28, 0.38, 0.05]
DECIDES_P = {
    "c_level": 0.8,
    "vp": 0.65,
    "director": 0.45,
    "manager": 0.2,
    "individual_contributor": 0.05,
    "student": 0.01,
}
DEPARTMENT = {
    "it": 0.3,
    "engineering": 0.3,
    "operations": 0.2,
    "sales": 0.15,
    "marketing": 0.1,
    "finance": 0.0,
    "hr": -0.4,
    "other": -0.3,
}
DEPARTMENT_P = [0.18, 0.14, 0.12, 0.16, 0.16, 0.08, 0.06, 0.10]
PRODUCT = {"analytics": 0.5, "crm": 0.4, "automation": 0.3, "ai_assistant": 0.9, "hardware": -1.4, "consulting": -0.8}
USE_CASE = {"sales_pipeline": 0.5, "reporting": 0.3, "customer_support": 0.1, "personal": -1.2, "other": -0.3}
USE_CASE_P = [0.3, 0.3, 0.2, 0.08, 0.12]


@dataclass(frozen=True)
class _Delay:
    """Days from creation to conversion: lognormal, clipped; leads stay open longer in a slow funnel."""

    median_days: float
    sigma: float
    max_days: float
    open_days: float  # younger unconverted leads are Open/Working, older ones Disqualified/Nurture


CONVERSION_DELAYS = {
    "fast": _Delay(median_days=25, sigma=0.8, max_days=89, open_days=60),  # inside a 90-day window
    "slow": _Delay(median_days=75, sigma=0.6, max_days=270, open_days=180),  # a marketing funnel: ~9 months
}
LATE_QUARTERS = 2  # base_rate_shift applies to leads created in this many newest quarters
LEAK_REASON = "post-contact event (leakage)"
# The leaky column's values, with their share among converted and among not-converted leads. About
# 8% of each class carries the other class's values and 14% a shared one, so the column is not pure,
# but ranked by its conversion rate per value it separates the classes with an AUC of 0.93 to 0.94.
LAST_TOUCH = {
    "Contract sent": (0.32, 0.0),
    "Proposal sent": (0.26, 0.02),
    "Meeting held": (0.20, 0.06),
    "Email opened": (0.14, 0.14),
    "Follow-up email sent": (0.08, 0.26),
    "No answer": (0.0, 0.26),
    "Email bounced": (0.0, 0.16),
    "Unsubscribed": (0.0, 0.10),
}


@dataclass(frozen=True)
class SyntheticHistory:
    leads: pd.DataFrame
    truth: pd.DataFrame
    leaks: dict[str, str] = field(default_factory=dict)  # leaky columns added to the leads -> why excluded

    def schema(self) -> LeadSchema:
        """The bundled schema, with this history's leaky columns listed under `excluded`."""
        base = bundled_schema()
        return base.model_copy(update={"excluded": {**base.excluded, **self.leaks}}) if self.leaks else base


def bundled_schema_path() -> Path:
    return Path(str(resources.files("features") / "data" / "synthetic_crm.yaml"))


def bundled_schema() -> LeadSchema:
    """The schema of the synthetic CRM: the default when a user brings no data of their own."""
    return load_schema(bundled_schema_path())


def generate(
    *,
    quarters: int = 12,
    leads_per_quarter: int = 20_000,
    seed: int = 7,
    end: str = DEFAULT_END,
    conversion_delay: str = "fast",
    base_rate_shift: float = 1.0,
    leak_column: str | None = None,
    launch_quarter: int | None = None,
    expansion_quarter: int | None = None,
) -> SyntheticHistory:
    """Generate `quarters` quarters of leads ending at `end` (the export date, exclusive).

    conversion_delay: "fast" (median 25 days, at most 89) or "slow" (median 75 days, at most 270).
    base_rate_shift: the base rate of the last two quarters, as a multiple of the earlier one; it
    moves their intercept, so the truth's probability includes it and true_logit minus the factor
    contributions is the intercept of the lead's period.
    leak_column: the name of a column of post-contact events that reveals the outcome (excluded
    in `history.schema()`), or None for none.
    launch_quarter, expansion_quarter: the quarter (0 = the first) from which the AI assistant is on
    offer and India and Brazil convert well; `quarters` means never within this history. By default two
    thirds and half-way in. In a short history those land in quarters whose outcomes the export cannot
    know yet (the last one, or one younger than a slow funnel's outcome window), so a test of something
    else sets them where the export can learn them.
    """
    if quarters < 1 or leads_per_quarter < 1:
        raise DataError("quarters and leads-per-quarter must be at least 1")
    delay = _delay_for(conversion_delay)
    if not np.isfinite(base_rate_shift) or base_rate_shift <= 0:
        raise DataError(f"base-rate-shift must be a positive number, got {base_rate_shift}")
    if base_rate_shift != 1.0 and quarters <= LATE_QUARTERS:
        raise DataError(f"base-rate-shift needs more than {LATE_QUARTERS} quarters: the earlier rate to shift from")
    if leak_column is not None and (not leak_column or leak_column in _columns()):
        raise DataError(f"leak column '{leak_column}' must be a new name, not empty or a column of the synthetic CRM")
    launch_at = _event_quarter(
        "launch", launch_quarter, quarters, int(np.ceil(quarters * 2 / 3)) if quarters >= 3 else quarters
    )
    expand_at = _event_quarter("expansion", expansion_quarter, quarters, quarters // 2 if quarters >= 2 else quarters)
    rng = np.random.default_rng(seed)
    export = pd.Timestamp(end)
    starts = [export - pd.DateOffset(months=3 * (quarters - q)) for q in range(quarters + 1)]
    n = quarters * leads_per_quarter
    quarter = np.repeat(np.arange(quarters), leads_per_quarter)
    progress = quarter / max(quarters - 1, 1)

    # When each lead arrived: uniform inside its quarter.
    start_ns = np.array([s.value for s in starts], dtype=np.int64)
    span = start_ns[quarter + 1] - start_ns[quarter]
    created_ns = start_ns[quarter] + (rng.random(n) * span).astype(np.int64)
    created_ns = (created_ns // 1_000_000_000) * 1_000_000_000

    # Where it came from: the source mix drifts towards paid search and purchased lists.
    source = _draw_source(rng, progress)
    launched = quarter >= launch_at
    expanded = quarter >= expand_at
    campaign = _draw_campaign(rng, source, launched)

    src_interest = np.vectorize(_SOURCE_INTEREST.get, otypes=[float])(source)
    interest = rng.normal(size=n) + src_interest
    is_list = source == "purchased_list"
    is_show = source == "trade_show"

    cols: dict[str, np.ndarray] = {}
    contrib = {f: np.zeros(n) for f in QUALITY_FACTORS}

    # --- Ideal-customer fit
    industry = _choice(rng, list(INDUSTRY), INDUSTRY_P, n)
    industry = np.where(is_list & (rng.random(n) < 0.3), "retail", industry)
    industry = _blank(rng, industry, 0.04)
    contrib["icp_fit"] += _effect(industry, INDUSTRY, missing=-0.2)
    log_size = np.clip(rng.normal(2.3, 0.85, n), 0, 5.5)
    size = np.round(10**log_size).astype(float)
    size_missing = rng.random(n) < np.where(is_show, 0.25, 0.07)
    size[size_missing] = np.nan
    contrib["icp_fit"] += np.where(size_missing, -0.3, np.maximum(0.5 - 0.9 * (log_size - 2.7) ** 2, -1.5))
    revenue = np.round(size * 0.18 * np.exp(rng.normal(0, 0.5, n)), 3)
    revenue[rng.random(n) < 0.25] = np.nan
    contrib["icp_fit"] += np.where(np.isnan(revenue), 0.0, 0.12 * np.clip(np.log10(revenue + 0.01), -2, 3))
    country = _blank(rng, _choice(rng, list(COUNTRY), COUNTRY_P, n), 0.03)
    country_effect = _effect(country, COUNTRY, missing=-0.2)
    for code, after in COUNTRY_AFTER_EXPANSION.items():
        country_effect = np.where(expanded & (country == code), after, country_effect)
    contrib["icp_fit"] += country_effect
    cols.update(industry=industry, company_size=size, annual_revenue=revenue, country=country)

    # --- Buying readiness
    no_tracking = rng.random(n) < np.where(is_list, 0.9, np.where(is_show, 0.5, 0.05))
    visits = rng.poisson(np.exp(0.9 + 0.6 * interest)).astype(float)
    pages = visits + rng.poisson(np.maximum(visits, 0) * 2.0).astype(float)
    pricing = rng.poisson(np.exp(-1.3 + 0.8 * interest)).astype(float)
    for arr in (visits, pages, pricing):
        arr[no_tracking] = np.nan
    downloads = rng.poisson(np.exp(-1.0 + 0.6 * interest)).astype(float)
    demo = rng.random(n) < _sigmoid(-2.3 + 0.9 * interest)
    days = np.minimum(np.round(rng.exponential(30 * np.exp(-0.4 * interest))), 365)
    days[rng.random(n) < 0.08] = np.nan
    webinar = rng.random(n) < np.where(source == "webinar", 0.9, _sigmoid(-2.2 + 0.5 * interest))
    ready = np.where(
        no_tracking,
        -0.35,
        np.minimum(0.45 * np.log1p(visits), 1.0) + 0.12 * np.log1p(pages) + np.minimum(0.5 * np.log1p(pricing), 1.0),
    )
    ready = ready + 0.3 * np.minimum(downloads, 3) + 1.1 * demo + 0.35 * webinar
    ready = ready + np.where(np.isnan(days), -0.5, -1.4 * (1 - np.exp(-np.nan_to_num(days) / 45)))
    contrib["readiness"] += ready
    cols.update(
        web_visits=visits,
        pages_viewed=pages,
        content_downloads=downloads,
        demo_requested=demo,
        pricing_page_views=pricing,
        days_since_last_activity=days,
        webinar_attended=webinar,
    )

    # --- Contact data: trade shows often lack e-mail, purchased lists bounce and carry bad phones.
    email_present = rng.random(n) < np.where(is_show, 0.55, np.where(is_list, 0.85, 0.97))
    free = rng.random(n) < np.where(is_list, 0.45, 0.22)
    email_type = np.where(email_present, np.where(free, "free", "corporate"), np.full(n, None, dtype=object))
    bounced = email_present & (rng.random(n) < np.where(is_list, 0.2, 0.04))
    phone_p = np.select([source == "web_form", is_show, is_list, source == "referral"], [0.45, 0.8, 0.7, 0.9], 0.55)
    phone_present = rng.random(n) < phone_p
    phone_valid = np.where(phone_present, rng.random(n) < np.where(is_list, 0.65, 0.92), np.nan)
    opted_out = rng.random(n) < 0.05
    contact = -0.9 * ~email_present - 0.4 * (email_present & free) - 1.0 * bounced
    contact = contact - 0.7 * ~phone_present - 0.6 * (phone_present & (phone_valid == 0)) - 0.5 * opted_out
    contrib["contactability"] += contact
    cols.update(
        email_present=email_present,
        email_type=email_type,
        email_bounced=bounced,
        phone_present=phone_present,
        phone_valid=phone_valid,
        opted_out_email=opted_out,
    )

    # --- Decision timeline
    shift = np.clip(0.25 + 0.12 * interest, 0.05, 0.6)
    u = rng.random(n)
    timeline = np.select([u < shift, u < shift + 0.3, u < shift + 0.55], list(TIMELINE)[:3], "12+ months")
    timeline = np.where(rng.random(n) < np.where(is_list, 0.8, 0.33), np.full(n, None, dtype=object), timeline)
    budget = (rng.random(n) < _sigmoid(-1.4 + 0.5 * interest)).astype(float)
    budget[rng.random(n) < 0.4] = np.nan
    contrib["timeline"] += _effect(timeline, TIMELINE, missing=-0.4)
    contrib["timeline"] += np.select([budget == 1, budget == 0], [0.7, -0.2], 0.0)
    contrib["timeline"] += 0.4 * ((budget == 1) & (timeline == "0-3 months"))
    cols.update(purchase_timeline=timeline, budget_confirmed=budget)

    # --- Decision authority
    seniority = _choice(rng, list(SENIORITY), SENIORITY_P, n)
    decides = (rng.random(n) < np.vectorize(DECIDES_P.get, otypes=[float])(seniority)).astype(float)
    seniority = _blank(rng, seniority, 0.1)
    decides[rng.random(n) < 0.2] = np.nan
    department = _blank(rng, _choice(rng, list(DEPARTMENT), DEPARTMENT_P, n), 0.12)
    contrib["authority"] += _effect(seniority, SENIORITY, missing=-0.3) + _effect(department, DEPARTMENT, missing=-0.1)
    contrib["authority"] += np.select([decides == 1, decides == 0], [0.5, 0.0], -0.1)
    contrib["readiness"] += 0.5 * (demo & (decides == 1))
    cols.update(seniority=seniority, department=department, decision_maker=decides)

    # --- Product fit: an AI assistant launches two thirds in, with its own campaign.
    product = _choice(
        rng, ["analytics", "crm", "automation", "hardware", "consulting"], [0.35, 0.3, 0.2, 0.08, 0.07], n
    )
    ai = launched & ((campaign == LAUNCH_CAMPAIGN) & (rng.random(n) < 0.8) | (rng.random(n) < 0.12))
    product = _blank(rng, np.where(ai, "ai_assistant", product), 0.15)
    use_case = _blank(rng, _choice(rng, list(USE_CASE), USE_CASE_P, n), 0.25)
    contrib["product_fit"] += _effect(product, PRODUCT, missing=-0.2) + _effect(use_case, USE_CASE, missing=-0.1)
    cols.update(product_interest=product, use_case=use_case)

    # --- Outcomes from the known model
    centred = {f: contrib[f] - contrib[f].mean() for f in QUALITY_FACTORS}
    total = np.sum([centred[f] for f in QUALITY_FACTORS], axis=0)
    intercept = _solve_intercept(total, BASE_RATE)
    late = quarter >= quarters - LATE_QUARTERS
    logit = _shifted_intercept(total, intercept, late, base_rate_shift) + total
    prob = _sigmoid(logit)
    eventually = rng.random(n) < prob
    delay_days = np.clip(np.exp(rng.normal(np.log(delay.median_days), delay.sigma, n)), 1, delay.max_days)
    converted_ns = created_ns + (delay_days * 86_400e9).astype(np.int64)
    converted_ns = (converted_ns // 1_000_000_000) * 1_000_000_000  # whole seconds, like created_at
    observed = eventually & (converted_ns < export.value)
    age_days = (export.value - created_ns) / 86_400e9
    status = np.where(
        observed,
        "Converted",
        np.where(
            age_days > delay.open_days,
            np.where(rng.random(n) < 0.85, "Disqualified", "Nurture"),
            np.where(rng.random(n) < 0.7, "Open", "Working"),
        ),
    )

    ids = np.char.add("L", np.char.zfill(np.arange(1, n + 1).astype(str), 8))
    leads = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": pd.to_datetime(created_ns),
            "lead_source": source,
            "campaign": campaign,
        }
    )
    for name, values in cols.items():
        leads[name] = values
    leads["lead_status"] = status
    leads["converted"] = observed.astype(np.int8)
    leads["converted_at"] = pd.to_datetime(np.where(observed, converted_ns, np.iinfo(np.int64).min))
    leads = _with_dtypes(leads)
    leaks: dict[str, str] = {}
    if leak_column is not None:
        leads[leak_column] = pd.Series(_last_touch(rng, observed), dtype="string")
        leaks[leak_column] = LEAK_REASON
    owner_rng = np.random.default_rng([seed, 12])  # its own stream: every other column stays as it was
    leads["sales_owner"] = pd.Series(_assign_owners(owner_rng, logit - logit.mean(), eventually), dtype="string")

    truth = pd.DataFrame(
        {
            "lead_id": ids,
            "true_probability": prob,
            "true_logit": logit,
            "true_converted_eventually": eventually.astype(np.int8),
        }
    )
    for f in QUALITY_FACTORS:
        truth[f"true_{f}"] = centred[f]
    return SyntheticHistory(leads=leads, truth=truth, leaks=leaks)


def truth_path_for(out: Path) -> Path:
    return out.with_name(f"{out.name.split('.')[0]}.truth{''.join(out.suffixes)}")


def schema_path_for(out: Path) -> Path:
    return out.with_name(f"{out.name.split('.')[0]}.schema.yaml")


def write_history(history: SyntheticHistory, out: str | Path) -> dict[str, Path]:
    """Write leads, truth and schema beside each other; written to temp names, then renamed."""
    from features.loading import write_table

    out = Path(out)
    paths = {"leads": out, "truth": truth_path_for(out), "schema": schema_path_for(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(history.leads, paths["leads"])
    write_table(history.truth, paths["truth"])
    if history.leaks:
        history.schema().dump(paths["schema"])
    else:
        paths["schema"].write_text(bundled_schema_path().read_text())  # keeps the bundled file's comments
    return paths


def _columns() -> set[str]:
    schema = bundled_schema()
    return {*schema.role_columns, *schema.feature_names, *schema.context, *schema.excluded}


def _delay_for(name: str) -> _Delay:
    if name not in CONVERSION_DELAYS:
        raise DataError(f"conversion delay must be one of {', '.join(CONVERSION_DELAYS)}, got '{name}'")
    return CONVERSION_DELAYS[name]


def _event_quarter(name: str, chosen: int | None, quarters: int, default: int) -> int:
    """The quarter an event of the history starts in: `chosen`, checked, or the default."""
    if chosen is None:
        return default
    if isinstance(chosen, bool) or not isinstance(chosen, (int, np.integer)) or not 0 <= chosen <= quarters:
        raise DataError(f"{name}-quarter must be a whole number from 0 to {quarters} (never), got {chosen}")
    return int(chosen)


def _shifted_intercept(total: np.ndarray, intercept: float, late: np.ndarray, shift: float) -> np.ndarray | float:
    """Per-lead intercepts: the late leads' one is solved so their mean probability is `shift` x the earlier one.

    Shifting the intercept multiplies every late lead's odds by the same factor, so the factor
    effects (and the truth's centred per-factor log-odds) stay what they are; only the baseline moves.
    """
    if shift == 1.0:
        return intercept
    earlier = _sigmoid(intercept + total[~late]).mean()
    target = shift * earlier
    if target > 0.8:  # also keeps the solved intercept well inside _solve_intercept's range
        raise DataError(f"base-rate-shift {shift} would lift the base rate from {earlier:.1%} to {target:.0%}")
    return np.where(late, _solve_intercept(total[late], target), intercept)


def _assign_owners(rng: np.random.Generator, centred_logit: np.ndarray, converted: np.ndarray) -> np.ndarray:
    """Who each lead went to. Drawn after the outcome, in proportion to how likely each seller was to be
    handed this lead (OWNER_TILT) and, for a converted lead, to have closed it (OWNER_SKILL): for leads
    of equal quality, a seller's odds of converting are their skill times the pool's."""
    tilt = np.array([OWNER_TILT.get(o, 0.0) for o in OWNERS])
    skill = np.array([OWNER_SKILL.get(o, 1.0) for o in OWNERS])
    weight = np.exp(np.clip(centred_logit, -3, 3)[:, None] * tilt[None, :])
    weight = weight * np.where(converted[:, None], skill[None, :], 1.0)
    cum = np.cumsum(weight / weight.sum(axis=1, keepdims=True), axis=1)
    idx = (rng.random(len(converted))[:, None] > cum).sum(axis=1)
    return np.asarray(OWNERS, dtype=object)[np.minimum(idx, len(OWNERS) - 1)]


def _last_touch(rng: np.random.Generator, converted: np.ndarray) -> np.ndarray:
    """A post-contact event per lead, drawn from LAST_TOUCH by whether the lead has converted by the export."""
    values = np.asarray(list(LAST_TOUCH), dtype=object)
    shares = np.array(list(LAST_TOUCH.values()))  # (value, [converted, not converted])
    cum = np.cumsum(shares, axis=0).T[np.where(converted, 0, 1)]  # each lead's cumulative distribution
    idx = (rng.random(len(converted))[:, None] > cum).sum(axis=1)
    return values[np.minimum(idx, len(values) - 1)]


def _with_dtypes(leads: pd.DataFrame) -> pd.DataFrame:
    """The dtypes the bundled schema declares (one definition of them), plus text for the excluded status."""
    from features.loading import cast_to_schema

    schema = bundled_schema()
    ids = leads[schema.id_column]  # already text; kept as generated so a seed's history stays byte-identical
    leads = cast_to_schema(leads, schema)
    leads[schema.id_column] = ids
    leads["lead_status"] = leads["lead_status"].astype("string")
    leads.loc[leads["converted"] == 0, "converted_at"] = pd.NaT
    return leads


def _draw_source(rng: np.random.Generator, progress: np.ndarray) -> np.ndarray:
    mix = _MIX_START[None, :] * (1 - progress[:, None]) + _MIX_END[None, :] * progress[:, None]
    mix = mix / mix.sum(axis=1, keepdims=True)
    cum = np.cumsum(mix, axis=1)
    idx = (rng.random(len(progress))[:, None] > cum).sum(axis=1)
    return np.asarray(SOURCES, dtype=object)[np.minimum(idx, len(SOURCES) - 1)]


def _draw_campaign(rng: np.random.Generator, source: np.ndarray, launched: np.ndarray) -> np.ndarray:
    campaign = np.empty(len(source), dtype=object)
    for name, options in _CAMPAIGNS.items():
        mask = source == name
        campaign[mask] = np.asarray(options, dtype=object)[rng.integers(0, len(options), mask.sum())]
    launch = launched & (source == "paid_search") & (rng.random(len(source)) < 0.5)
    campaign[launch] = LAUNCH_CAMPAIGN
    return campaign


def _choice(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> np.ndarray:
    p_arr = np.asarray(p, dtype=float)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p_arr / p_arr.sum())]


def _blank(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    out = values.astype(object)
    out[rng.random(len(values)) < rate] = None
    return out


def _effect(values: np.ndarray, table: dict[str, float], *, missing: float) -> np.ndarray:
    out = np.full(len(values), missing, dtype=float)
    for key, effect in table.items():
        out[values == key] = effect
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(total: np.ndarray, rate: float) -> float:
    """The intercept that makes the mean true probability equal the base rate (bisection)."""
    lo, hi = -10.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(mid + total).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
