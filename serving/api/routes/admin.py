"""POST /v1/admin/reload: re-resolve the configured model (the champion may have moved) and swap it in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException

from features.errors import LeadscoreError
from serving.api import service
from serving.api.deps import SettingsDep, StateDep
from serving.api.schemas import ErrorBody

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/reload", responses={code: {"model": ErrorBody} for code in (401, 404, 503)}, summary="Reload the champion"
)
async def reload(
    settings: SettingsDep, state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """Requires `Authorization: Bearer $LEADSCORE_ADMIN_TOKEN`; in-flight requests finish on the old model."""
    service.check_admin(configured=settings.admin_token, authorization=authorization)
    previous = state.scorer.model_info if state.scorer is not None else None
    try:
        scorer = await state.load()
    except LeadscoreError as exc:
        kept = f"; still serving version {previous['version']}" if previous else ""
        raise HTTPException(503, f"reload failed: {exc}{kept}") from None
    return {"reloaded": True, "previous": previous, "model": scorer.model_info}
