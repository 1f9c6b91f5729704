"""The model a version serves: the pickle-free bundle, its scorer and exact explanations.

Imports neither the API, the reports nor the prediction log (an import-linter contract)."""
