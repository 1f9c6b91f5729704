"""POST /v1/outcomes, POST /v1/feedback (sales to the log) and GET /v1/leads/{id}/history.

Writes need `Authorization: Bearer $LEADSCORE_WRITE_TOKEN` (separate from the admin token) and are
committed before the 2xx; a database that cannot be reached is a 503, never a lost write.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from features.factors import FACTORS
from serving.api import service
from serving.api.deps import SettingsDep
from serving.api.errors import InputError
from serving.api.lead_input import MAX_PROBLEMS
from serving.api.schemas import ErrorBody, problems
from serving.predlog.engine import ID_LENGTH, TEXT_LENGTH
from serving.predlog.service import Loop

if TYPE_CHECKING:
    from sqlalchemy import Engine

router = APIRouter(prefix="/v1", tags=["closing the loop"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 422, 503)}
LeadId = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if type(v) is int else v),  # a CRM's numeric ids too
    Field(min_length=1, max_length=ID_LENGTH, description="the lead id the score used"),
]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    lead_id: LeadId
    outcome: Literal["converted", "lost"]
    occurred_at: datetime | None = Field(
        None, description="when it converted or was lost (ISO 8601; naive times are UTC; default: now)"
    )
    owner: Annotated[str, Field(min_length=1, max_length=ID_LENGTH)] | None = Field(
        None, description="the seller or team who worked the lead, for conversion against expectation"
    )


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    lead_id: LeadId
    factor: Literal[FACTORS] = Field(  # type: ignore[valid-type]
        description="the seller's verdict in the factor vocabulary: authority for "
        "'wrong decision maker', contactability for 'cannot reach', ..."
    )
    comment: str = Field("", max_length=TEXT_LENGTH, description="free text")
    author: Annotated[str, Field(min_length=1, max_length=ID_LENGTH, description="who said it")]


def _loop(request: Request) -> Loop:
    return request.app.state.loop


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:  # 400 for a body that is not JSON, 422 naming each field otherwise
        kinds = {err["type"] for err in exc.errors(include_url=False, include_input=False)}
        raise InputError(400 if "json_invalid" in kinds else 422, problems(exc)[:MAX_PROBLEMS]) from None


async def _in_db(function: Any, /, **kwargs: Any) -> Any:
    from sqlalchemy.exc import SQLAlchemyError  # here: a server nobody sends outcomes to never imports it

    try:
        return await run_in_threadpool(function, **kwargs)
    except SQLAlchemyError as exc:
        raise HTTPException(
            503, "the prediction log database cannot be reached; nothing was recorded, try again"
        ) from exc


async def _authorised_write(
    request: Request, settings: Any, authorization: str | None, model: type[BaseModel]
) -> tuple[Any, Engine]:
    """The steps every write shares, in the order that costs least on a refusal: the token, the body,
    then the database; (the parsed body, the engine to write with)."""
    service.check_token(
        configured=settings.write_token, authorization=authorization, kind="write", variable="LEADSCORE_WRITE_TOKEN"
    )
    body = _parse(model, await request.body())
    return body, await _in_db(_loop(request).ready_engine)


@router.post("/outcomes", responses={200: {}, 201: {}, **_ERRORS}, summary="Record a lead's outcome")
async def post_outcome(
    request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Converted or lost, and when. Idempotent: 201 the first time, 200 for a repeat or a correction;
    a repeat that leaves out `occurred_at` or `owner` keeps what was stored."""
    from serving.predlog import store  # SQLAlchemy with it: loaded by the first request that needs the log

    body, engine = await _authorised_write(request, settings, authorization, OutcomeIn)
    status, row = await _in_db(
        store.record_outcome,
        engine=engine,
        lead_id=body.lead_id,
        converted=body.outcome == "converted",
        occurred_at=body.occurred_at,
        owner=body.owner,
    )
    return JSONResponse(
        {
            "lead_id": body.lead_id,
            "outcome": body.outcome,
            "occurred_at": row["occurred_at"].isoformat(),
            "owner": row["owner"],
            "status": status,
        },
        status_code=201 if status == "created" else 200,
    )


@router.post("/feedback", responses={200: {}, 201: {}, **_ERRORS}, summary="Record a seller's verdict on a lead")
async def post_feedback(
    request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """What sales found wrong with a lead, in the factor vocabulary the model explains with. 201 when
    stored; 200 with the stored verdict when the same person already said the same thing (a retry)."""
    from serving.predlog import store  # SQLAlchemy with it: loaded by the first request that needs the log

    body, engine = await _authorised_write(request, settings, authorization, FeedbackIn)
    created, row = await _in_db(
        store.add_feedback,
        engine=engine,
        lead_id=body.lead_id,
        factor=body.factor,
        author=body.author,
        comment=body.comment,
    )
    return JSONResponse({**row, "created_at": row["created_at"].isoformat()}, status_code=201 if created else 200)


@router.get("/leads/{lead_id}/history", responses=_ERRORS, summary="A lead's scores over time, outcome and feedback")
async def lead_history(lead_id: Annotated[str, Field(max_length=ID_LENGTH)], request: Request) -> dict[str, Any]:
    """Every logged score (oldest first), the trend of the last two, the outcome and sales feedback."""
    from serving.predlog import store  # SQLAlchemy with it: loaded by the first request that needs the log

    loop = _loop(request)
    engine = await _in_db(loop.ready_engine)
    found = await _in_db(store.lead_history, engine=engine, lead_id=lead_id)
    if found is None:
        raise HTTPException(404, f"no scores, outcome or feedback logged for lead {lead_id!r}")
    return found
