"""The HTTP ingest (``corridor ingest``): producers without a Kafka client publish events over HTTP.

A stateless process: bearer tokens limited to families, size and rate limits, the worker's
own validation, and the SDK's publisher (batched, keyed, idempotent). ``create_app`` builds
the FastAPI application; docs/ingest.md describes the service.
"""

from __future__ import annotations

from streams.ingest.app import NoTokens, create_app, openapi_document

__all__ = ["NoTokens", "create_app", "openapi_document"]
