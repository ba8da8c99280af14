"""The HTTP server of ``headwater serve``: online features, Prometheus metrics, a dashboard.

Importing this package does not import FastAPI or uvicorn; :func:`create_app` and :func:`serve`
do, when called.
"""

from headwater.server.app import DEFAULT_PORT, create_app, serve

__all__ = ["DEFAULT_PORT", "create_app", "serve"]
