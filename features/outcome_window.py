"""The outcome window: how many days after creation a lead's outcome counts as final.

The target a model learns is "converted within the window". Two forces pull on the window's length:

- **coverage**: a window shorter than most conversion lags calls leads "lost" that were about to
  convert, so it should hold most conversions (we aim at 90%);
- **data**: a lead is only *mature* (its label final) once the window has passed since it was
  created, so every extra day of window removes the newest leads from training. A window as long as
  the export leaves nothing to learn from.

`choose_window` takes the shortest window that holds 90% of conversions, unless that leaves too few
mature leads or mature conversions, and then the longest window that still leaves enough, saying
the trade-off in its note. Inference drafts `outcome_window_days` with it; training can call it too.

>>> choice = choose_window(frame["created_at"], frame["converted_at"])    # doctest: +SKIP
>>> choice.days, choice.note                                              # doctest: +SKIP
(120, '120 days: covers 88% of conversions; 6,100 of 8,000 leads mature (410 converted within it)')

Lags are right-censored by the export: a lead created a month before the export can only show lags
up to a month, so the raw lags of an export look shorter than they are, and more so the shorter the
export. `window_options` corrects for this with the product-limit (Kaplan-Meier) estimator for
right-truncated data, read backwards in time: a conversion `s` days after creation could only be
seen on leads at least `s` days old, so the share of conversions at lag `s` among those with a lag
of at most `s` is estimated on leads old enough to have shown `s`. Lags the export is too short to
show reliably (fewer than `MIN_AT_RISK` conversions old enough) are out of reach, so coverage is
"of the conversions that come within the longest lag the export can measure"; conversions slower
than anything the export can show are invisible to every method.

When the first recorded conversion comes long after the first lead (an export that records
conversions only from some date on, as Olist's closed deals do), lags are measured only on leads
created since then: older leads could only show their slow conversions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

CANDIDATES: tuple[int, ...] = (30, 45, 60, 90, 120, 150, 180, 270, 365, 540, 730)
DEFAULT_DAYS = 90  # the window without conversion dates to measure lags with
MIN_DAYS = 30  # never propose a shorter window
TARGET_COVERAGE = 0.9  # the window should hold this share of conversions
MIN_LAGS = 20  # fewer conversion lags than this measure nothing
MIN_AT_RISK = 10  # a lag counts as measured only where this many conversions could have shown it
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class WindowChoice:
    """One candidate window and what it leaves to learn from, with a line that says so."""

    days: int  # the proposed window
    coverage: float  # share of observed conversions (with a lag) that came within `days`; nan without lags
    n_mature: int  # leads whose outcome is final at export end under this window
    n_mature_converted: int  # conversions within the window among those mature leads
    n_leads: int
    note: str  # one line for people


def lag_days(created: pd.Series, converted: pd.Series) -> np.ndarray:
    """Days from creation to conversion for leads with both dates, dropping negative (impossible) lags."""
    return _lags(_dates(created), _dates(converted).reindex(created.index))[0]


def export_end(created: pd.Series, converted: pd.Series | None) -> pd.Timestamp:
    """The newest event in the file (a creation or a conversion): when the export was taken, at the earliest."""
    ends = [_dates(created).max()]
    if converted is not None:
        ends.append(_dates(converted).max())
    ends = [e for e in ends if not pd.isna(e)]
    return max(ends) if ends else pd.NaT


def window_options(
    created: pd.Series,
    converted: pd.Series | None,
    *,
    as_of: pd.Timestamp | str | None = None,
    candidates: Sequence[int] = CANDIDATES,
) -> list[WindowChoice]:
    """Each candidate window with its coverage and what it leaves mature at `as_of` (default: export end).

    Only what is known at `as_of` counts: leads created later are ignored, and conversions after it
    count as not (yet) converted. A lead is mature when it was created at least `days` before
    `as_of`; its label is "converted within `days`". Young leads that already converted are final
    too, but counting them without their young unconverted peers would overstate how many
    conversions there are to learn from, so they are not counted as mature here.
    """
    start, end, as_of = _known_at(created, converted, as_of)
    created_ns = start.dropna().to_numpy().astype("datetime64[ns]").astype(np.int64)
    n_leads = len(created_ns)
    lags, lag_created_ns = _lags(start, end)
    since = _conversions_recorded_from(start, lags, end)
    recorded = lag_created_ns >= (pd.Timestamp(since).value if since is not None else np.iinfo(np.int64).min)
    ages = (pd.Timestamp(as_of).value - lag_created_ns[recorded]) / _DAY_NS
    coverage = _coverage_curve(lags[recorded], ages) if recorded.sum() >= MIN_LAGS else None
    options = []
    for days in sorted(int(d) for d in candidates):
        cutoff = (as_of - pd.Timedelta(days=days)).value if n_leads else 0
        n_mature = int((created_ns <= cutoff).sum())
        mature_conv = int(((lags <= days) & (lag_created_ns <= cutoff)).sum())
        cov = coverage(days) if coverage else math.nan
        options.append(
            WindowChoice(
                days, cov, n_mature, mature_conv, n_leads, _describe(days, cov, n_mature, mature_conv, n_leads)
            )
        )
    return options


def choose_window(
    created: pd.Series,
    converted: pd.Series | None,
    *,
    as_of: pd.Timestamp | str | None = None,
    min_mature_share: float = 0.5,
    min_converted: int = 200,
    target_coverage: float = TARGET_COVERAGE,
    candidates: Sequence[int] = CANDIDATES,
    default: int = DEFAULT_DAYS,
) -> WindowChoice:
    """The outcome window to propose, with a note that says why.

    The shortest candidate window (never under 30 days) that holds `target_coverage` of the
    conversions, unless it leaves too little to learn from: fewer than `min_mature_share` of the
    leads mature, or fewer than min(`min_converted`, half the conversions) mature conversions
    within it. Then the longest shorter window that still leaves enough, trading coverage for
    data; when none does, the shortest. Without conversion dates (or fewer than 20 lags) the
    window is `default` days, shortened the same way when the export is too young for it.
    """
    if converted is None:
        # No conversion dates at all: nothing says how long conversions take, and nothing says which
        # recorded "not converted" is still open. The export's outcomes are taken as final (window 0).
        n = int(pd.to_datetime(created, errors="coerce").notna().sum())
        return WindowChoice(
            0,
            math.nan,
            n,
            0,
            n,
            "0 days: no conversion dates, so each outcome is taken as the "
            "export records it; set outcome_window_days if young leads may still convert",
        )
    start, end, as_of = _known_at(created, converted, as_of)
    options = window_options(start, end, as_of=as_of, candidates=[d for d in candidates if d >= MIN_DAYS] or [MIN_DAYS])
    measured = not math.isnan(options[0].coverage)
    lags = _lags(start, end)[0]
    if measured:
        preferred = next((o for o in options if o.coverage >= target_coverage), options[-1])
        needed = min(min_converted, max(1, int(0.5 * len(lags))))
    else:
        preferred = min(options, key=lambda o: (abs(o.days - default), o.days))
        needed = 0

    def enough(o: WindowChoice) -> bool:
        return o.n_mature >= min_mature_share * o.n_leads and o.n_mature_converted >= needed

    if enough(preferred):
        chosen = preferred
    else:
        shorter = [o for o in options if o.days < preferred.days]
        fits = [o for o in shorter if enough(o)]
        chosen = fits[-1] if fits else options[0]
    choice = _with_reason(
        chosen, preferred, measured=measured, target=target_coverage, share=min_mature_share, needed=needed
    )
    if measured:
        since = _conversions_recorded_from(start, lags, end)
        if since is not None:
            choice = replace(
                choice,
                note=choice.note + f"; conversions are recorded only from {since:%Y-%m-%d}, "
                f"{(since - start.min()).days} days after the first lead, so lags were measured on "
                "leads created since then and older leads may be missing conversions",
            )
    return choice


# -- helpers -----------------------------------------------------------------------------------


def _dates(values: pd.Series | None) -> pd.Series:
    """datetime64[ns] without a zone; text is parsed, unreadable cells become NaT."""
    if values is None:
        return pd.Series([], dtype="datetime64[ns]")
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(values.astype("string"), errors="coerce", format="mixed", utc=True)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[ns]")


def _known_at(
    created: pd.Series, converted: pd.Series | None, as_of: pd.Timestamp | str | None
) -> tuple[pd.Series, pd.Series, pd.Timestamp]:
    """Creation and conversion dates as known at `as_of`: later leads dropped, later conversions blanked."""
    start = _dates(created)
    end = (
        _dates(converted).reindex(start.index)
        if converted is not None
        else pd.Series(pd.NaT, index=start.index, dtype="datetime64[ns]")
    )
    as_of = export_end(start, end) if as_of is None else pd.Timestamp(as_of)
    if pd.isna(as_of):
        return start, end, as_of
    start = start[start <= as_of]
    end = end.reindex(start.index)
    end = end.where(end <= as_of)
    return start, end, as_of


def _conversions_recorded_from(start: pd.Series, lags: np.ndarray, end: pd.Series) -> pd.Timestamp | None:
    """The first recorded conversion, when it comes suspiciously late: conversion history starts late.

    "Late" means more than max(30 days, the median lag) after the first lead: in an export that
    recorded conversions all along, the first one follows the first leads by about a short lag.
    Leads created before it could only show their slow conversions, so they are left out of the lags.
    """
    if not len(lags):
        return None
    first_conversion, first_lead = end.min(), start.min()
    late = pd.Timedelta(days=max(MIN_DAYS, float(np.median(lags))))
    return first_conversion if first_conversion - first_lead > late else None


def _lags(start: pd.Series, end: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Lag in days and creation time (ns) of each lead with both dates and a non-negative lag."""
    both = (start.notna() & end.notna()).to_numpy()
    s = start.to_numpy()[both].astype("datetime64[ns]").astype(np.int64)
    e = end.to_numpy()[both].astype("datetime64[ns]").astype(np.int64)
    lags = (e - s) / _DAY_NS
    keep = lags >= 0
    return lags[keep], s[keep]


def _coverage_curve(lags: np.ndarray, ages: np.ndarray):
    """F(d) / F(tau): the share of conversions within `d` days, corrected for right truncation.

    Reverse-time product limit: F(t) / F(tau) = prod over lags s in (t, tau] of (1 - d(s) / R(s)),
    where d(s) counts lags equal to s and R(s) the conversions with lag <= s <= age (those that
    could have shown a lag of s). tau is the longest lag at which R(s) >= MIN_AT_RISK.
    """
    values, counts = np.unique(lags, return_counts=True)
    order = np.sort(ages)
    at_risk = np.cumsum(counts) - np.searchsorted(order, values, side="left")
    reliable = at_risk >= MIN_AT_RISK
    if not reliable.any():
        return None
    tau_index = int(np.flatnonzero(reliable)[-1])
    values, counts, at_risk = values[: tau_index + 1], counts[: tau_index + 1], at_risk[: tau_index + 1]
    factors = np.clip(1.0 - counts / np.maximum(at_risk, 1), 0.0, 1.0)
    # share within values[i] = product of factors after i
    suffix = np.concatenate([np.cumprod(factors[::-1])[::-1][1:], [1.0]])

    def coverage(days: float) -> float:
        i = int(np.searchsorted(values, days, side="right")) - 1
        return 0.0 if i < 0 else float(suffix[i])

    return coverage


def _describe(days: int, coverage: float, n_mature: int, mature_conv: int, n_leads: int) -> str:
    cover = f"covers {coverage:.0%} of conversions; " if not math.isnan(coverage) else ""
    within = f" ({mature_conv:,} converted within it)" if not math.isnan(coverage) else ""
    return f"{days} days: {cover}{n_mature:,} of {n_leads:,} leads mature{within}"


def _with_reason(
    chosen: WindowChoice, preferred: WindowChoice, *, measured: bool, target: float, share: float, needed: int
) -> WindowChoice:
    """The chosen option, its note extended with why it was chosen over the preferred one."""
    note = chosen.note
    if not measured:
        note += f" (default {preferred.days} days: no conversion dates to measure how long conversions take"
        note += (
            ")"
            if chosen is preferred
            else f"; shortened because {preferred.days} days leaves only {_share(preferred)} of leads mature)"
        )
    elif chosen is not preferred:
        short = []
        if preferred.n_mature < share * preferred.n_leads:
            short.append(f"only {preferred.n_mature:,} leads mature ({_share(preferred)})")
        if preferred.n_mature_converted < needed:
            short.append(f"{preferred.n_mature_converted:,} mature conversions (want {needed:,})")
        note += (
            f"; {target:.0%} coverage would need {preferred.days} days, leaving {' and '.join(short)}, "
            "so this window trades coverage for data"
        )
        if chosen.n_mature < share * chosen.n_leads or chosen.n_mature_converted < needed:
            note += f"; even {chosen.days} days leaves little to learn from: collect more history"
    return WindowChoice(chosen.days, chosen.coverage, chosen.n_mature, chosen.n_mature_converted, chosen.n_leads, note)


def _share(option: WindowChoice) -> str:
    return f"{option.n_mature / option.n_leads:.0%}" if option.n_leads else "0%"
