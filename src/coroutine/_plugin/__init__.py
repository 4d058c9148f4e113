"""The mypy plugin's parts; `coroutine.mypy` is the entry point. Imports mypy: dev only."""
