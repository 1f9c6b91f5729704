"""GET /v1/model: what is being served, how good it was on its test quarter, and the lead's fields."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.api import service
from serving.api.deps import ScorerDep
from serving.api.schemas import ErrorBody

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", responses={503: {"model": ErrorBody}}, summary="The model being served")
async def model(scorer: ScorerDep) -> dict[str, Any]:
    """Name, version, as-of, data window, test metrics, grade floors, factor labels and lead fields."""
    return service.describe_model(scorer=scorer)
