"""GET /v1/model: what is being served, how good it was on its test quarter, and the lead's fields."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from serving import service
from serving.deps import get_scorer
from serving.schemas import ErrorBody
from serving.scorer import Scorer

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", responses={503: {"model": ErrorBody}}, summary="The model being served")
async def model(scorer: Scorer = Depends(get_scorer)) -> dict[str, Any]:
    """Name, version, as-of, data window, test metrics, grade floors, factor labels and lead fields."""
    return service.describe_model(scorer=scorer)
