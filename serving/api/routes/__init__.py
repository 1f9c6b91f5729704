"""One APIRouter per module: score, model, health, admin."""
