"""Fuzz the API from its own OpenAPI document: thousands of generated and malformed requests.

    python bench/fuzz.py --model models/lead-conversion/3 [--cases 3000] [--seed 1] [--json]

schemathesis reads `/openapi.json` (whose request bodies are built from the lead schema) and draws
requests for every operation, both valid ("positive") and deliberately invalid ("negative": wrong
types, out-of-range numbers, unknown fields, broken JSON...). Hand-written malformed requests that a
schema-driven generator never makes (bytes that are not UTF-8, nested arrays, NaN, a top-level list,
a wrong content type) are sent too. Every response is checked:

- no 5xx, ever;
- every 4xx is JSON with a `detail` that names the problem (a sentence, or fields with problems);
- no body, whatever its status, holds a stack trace or a file-system path.

The requests go to the app in process (ASGI, one client reused), so thousands take a few minutes;
`tests/hardening/test_fuzz.py` runs a few hundred of the same. Exit code 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, when run as a script

LEAK_MARKERS = ("Traceback", "/work", "site-packages", '.py"', 'File "', "/tmp/", "/home/", "/usr/lib")

# (method, path, body bytes, content type): requests no schema-driven generator sends
MALFORMED: list[tuple[str, str, bytes, str]] = [
    ("POST", "/v1/score", b"", "application/json"),
    ("POST", "/v1/score", b"{", "application/json"),
    ("POST", "/v1/score", b"\xff\xfe\x00garbage", "application/json"),
    ("POST", "/v1/score", b"[]", "application/json"),
    ("POST", "/v1/score", b"null", "application/json"),
    ("POST", "/v1/score", b'"lead"', "application/json"),
    ("POST", "/v1/score", b'{"web_visits": NaN}', "application/json"),
    ("POST", "/v1/score", b'{"web_visits": Infinity}', "application/json"),
    ("POST", "/v1/score", b'{"annual_revenue": 1e999}', "application/json"),
    ("POST", "/v1/score", b'{"company_size": 123456789012345678901234567890}', "application/json"),
    ("POST", "/v1/score", b'{"web_visits": 1, "web_visits": "x"}', "application/json"),
    ("POST", "/v1/score", b'{"industry": {"nested": [1, 2, {"deep": null}]}}', "application/json"),
    ("POST", "/v1/score", b"[" * 5000 + b"]" * 5000, "application/json"),
    ("POST", "/v1/score", b'{"lead_id": "' + b"x" * 100_000 + b'"}', "application/json"),
    ("POST", "/v1/score", '{"industry": "softw\u00e4re \U0001f600"}'.encode(), "application/json"),
    ("POST", "/v1/score", b'{"industry": "software"}', "text/plain"),
    ("POST", "/v1/score", b"industry=software", "application/x-www-form-urlencoded"),
    ("POST", "/v1/score/batch", b'{"leads": {}}', "application/json"),
    ("POST", "/v1/score/batch", b'{"leads": [1, "two", null]}', "application/json"),
    ("POST", "/v1/score/batch", b'{"leads": []}', "application/json"),
    ("POST", "/v1/score/batch", b'{"leads": [{}], "extra": 1}', "application/json"),
    ("POST", "/v1/score/batch", b"[{}]", "application/json"),
    ("POST", "/v1/score/batch", b'{"leads": [' + b"{}," * 50 + b"{}]}", "application/json"),  # over max_batch
    ("GET", "/v1/score", b"", "application/json"),
    ("POST", "/v1/nowhere", b"{}", "application/json"),
    ("POST", "/v1/admin/reload", b"{}", "application/json"),
    ("DELETE", "/v1/model", b"", "application/json"),
]


@dataclass
class FuzzReport:
    """What came back: counts per operation and status, and the requests that broke a promise."""

    cases: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    bad_4xx: int = 0
    leaks: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.server_errors == 0 and self.bad_4xx == 0 and self.leaks == 0

    def record(self, label: str, status: int, body: bytes, request: Any) -> None:
        self.cases += 1
        self.statuses[f"{label} {status}"] += 1
        problem = response_problem(status, body, sent=_as_text(request))
        if problem is None:
            return
        kind, _ = problem.split(":", 1)
        self.server_errors += kind == "5xx"
        self.bad_4xx += kind == "4xx"
        self.leaks += kind == "leak"
        if len(self.failures) < 10:
            self.failures.append(
                {
                    "operation": label,
                    "status": status,
                    "problem": problem,
                    "request": repr(request)[:300],
                    "response": body[:300].decode(errors="replace"),
                }
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "server_errors": self.server_errors,
            "bad_4xx": self.bad_4xx,
            "leaks": self.leaks,
            "seconds": round(self.seconds, 1),
            "statuses": dict(sorted(self.statuses.items())),
            "failures": self.failures,
        }


def response_problem(status: int, body: bytes, *, sent: str = "") -> str | None:
    """Why this response breaks the API's promises, or None. Prefixed 5xx:, 4xx: or leak:.

    A marker that was in the request (`sent`) is the client's own text echoed back (an unseen
    category value in `warnings`, say), not a leak.
    """
    text, sent = _unescape(body.decode("utf-8", errors="replace")), _unescape(sent)
    leaked = [marker for marker in LEAK_MARKERS if marker in text and marker not in sent]
    if leaked:
        return f"leak: the body contains {leaked[0]!r}"
    if status >= 500:
        return f"5xx: HTTP {status}"
    if 400 <= status < 500:
        try:
            detail = json.loads(body)["detail"]
        except (ValueError, KeyError, TypeError):
            return f"4xx: HTTP {status} without a JSON body holding 'detail'"
        if not names_a_problem(detail):
            return f"4xx: HTTP {status} detail names no problem: {detail!r:.200}"
    return None


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")  # JSON-escaped quotes and backslashes count too


def _as_text(request: Any) -> str:
    """Everything the request said, as text a response could echo."""
    if isinstance(request, bytes):
        return request.decode("utf-8", errors="replace")
    try:
        dumped = json.dumps(request, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        dumped = ""
    return dumped + str(request)


def names_a_problem(detail: Any) -> bool:
    """A sentence, or a list of {field, problem} items each with a non-empty problem."""
    if isinstance(detail, str):
        return len(detail.strip()) >= 8
    if isinstance(detail, list) and detail:
        return all(isinstance(d, dict) and str(d.get("problem") or d.get("msg") or "").strip() for d in detail)
    return False


def build_app(model: str | Path, *, admin_token: str = "fuzz-token-not-sent", max_batch: int = 50) -> Any:
    """The API on `model`, with a small batch limit so generated batches hit the 413 path too."""
    from serving.api.main import create_app
    from serving.api.settings import Settings
    from serving.model.scorer import Scorer

    settings = Settings(model=str(model), admin_token=admin_token, max_batch=max_batch)
    return create_app(settings, scorer=Scorer.load(model))


@contextmanager
def asgi_client(app: Any) -> Iterator[Any]:
    """One in-process client for every request (schemathesis would otherwise start one per call)."""
    from schemathesis.python import asgi

    with asgi.get_client(app) as client:
        yield client


def fuzz(app: Any, *, cases: int, seed: int | None = None, derandomize: bool = False) -> FuzzReport:
    """`cases` generated requests (half valid, half invalid by construction) plus the MALFORMED list."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.generation import GenerationMode

    report = FuzzReport()
    began = time.perf_counter()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    strategy = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    with asgi_client(app) as client:
        for method, path, body, content_type in MALFORMED:
            response = client.request(method, path, data=body, headers={"content-type": content_type})
            report.record(f"{method} {path}", response.status_code, response.content, body[:80])

        @settings(
            max_examples=cases,
            deadline=None,
            database=None,
            derandomize=derandomize,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def one(case: Any) -> None:
            response = case.call(session=client)
            report.record(case.operation.label, response.status_code, response.content, case.body)

        if seed is not None and not derandomize:
            from hypothesis import seed as hypothesis_seed

            one = hypothesis_seed(seed)(one)
        one()
    report.seconds = time.perf_counter() - began
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a bundle folder or models:/ URI")
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line last")
    args = parser.parse_args(argv)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("serving").setLevel(logging.CRITICAL)  # 4xx are expected here; 5xx are counted
    report = fuzz(build_app(args.model), cases=args.cases, seed=args.seed)
    print(
        f"{report.cases:,} requests in {report.seconds:.0f} s: {report.server_errors} 5xx, "
        f"{report.bad_4xx} 4xx without a JSON problem, {report.leaks} leaking a trace or path"
    )
    for status, count in sorted(report.statuses.items()):
        print(f"  {status}: {count:,}")
    for failure in report.failures:
        print(f"FAIL {failure}")
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
