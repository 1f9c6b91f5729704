"""The HTTP app: FastAPI routes, request validation, settings, metrics and hot reload over serving.model."""
