"""The look the marketing report and the KPI page share: one stylesheet, Jinja2 templates with
autoescaping (group names and owners come from the data), charts as inline PNG with plain-text labels."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#1f2933;line-height:1.45}
h1{margin-bottom:.2rem} .meta{color:#52606d;margin-top:0}
#summary{background:#f5f7fa;border-left:4px solid #3e7bfa;padding:.5rem 1.2rem;margin:1rem 0}
figure{margin:1rem 0} figure img{max-width:100%;height:auto} figcaption{color:#52606d;font-size:.9rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1.5rem;width:100%}
.scroll{overflow-x:auto}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .5rem;text-align:right;white-space:nowrap}
td:first-child{text-align:left} th{background:#f5f7fa;text-align:center;white-space:normal}
.up{color:#1f7a4d} .down{color:#b42318}
"""


def render(template: str, **context: Any) -> str:
    """A page from serving/reports/templates; a missing variable is an error, not an empty cell."""
    return _environment().get_template(template).render(css=CSS, **context)


@functools.cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("serving.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@contextlib.contextmanager
def plain_text_charts() -> Iterator[None]:
    """Chart labels as written: "Save $50 now and $100 later" is text, not matplotlib math."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig: Any) -> str:
    """The figure as base64 PNG, ready for an <img src="data:image/png;base64,..."> in a template."""
    import base64

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
