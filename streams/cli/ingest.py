"""``corridor ingest``: the HTTP ingest service (streams/ingest), served by uvicorn."""

from __future__ import annotations

import json
from typing import IO

import click

from streams.cli.base import cli, setup


@cli.command()
@click.option("--host", metavar="HOST", help="Address to listen on [default: CORRIDOR_INGEST_HOST, 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on [default: CORRIDOR_INGEST_PORT, 6070].")
@click.option("--openapi", "openapi_file", type=click.File("w", encoding="utf-8"), metavar="FILE",
              help="Write the OpenAPI document to FILE (- for stdout) and exit: docs/openapi.json is made this way.")
def ingest(host: str | None, port: int | None, openapi_file: IO[str] | None) -> None:
    """Serve POST /v1/events/{family}, /healthz, /readyz and /metrics until Ctrl-C or SIGTERM.

    Requests carry 'Authorization: Bearer <token>'; CORRIDOR_INGEST_TOKENS lists the tokens
    and the families each may publish, and the ingest refuses to start without it. Valid
    events go to the family's Kafka topic through the producer SDK; plain HTTP: terminate
    TLS in a reverse proxy in front of it (docs/ingest.md).
    """
    settings = setup()
    from streams.ingest import NoTokens, create_app, openapi_document

    if openapi_file is not None:
        openapi_file.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")
        return
    try:
        app = create_app(settings)
    except NoTokens as exc:
        raise click.UsageError(str(exc)) from None
    import uvicorn

    uvicorn.run(
        app,
        host=host or settings.ingest_host,
        port=settings.ingest_port if port is None else port,
        log_config=None,  # its records go to the handler `setup` configured, in CORRIDOR_LOG_FORMAT
        access_log=False,  # the ingest logs each refused request itself, with its family and reason
        server_header=False,
    )
