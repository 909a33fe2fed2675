"""Bearer tokens of the HTTP ingest: which token may publish which families, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """One configured token: where it stands in ``CORRIDOR_INGEST_TOKENS`` and what it may publish."""

    position: int  #: 1-based place of its key in the setting; how logs and limits name it, never by its value
    families: frozenset[str]  #: families it may publish
    digest: bytes  #: SHA-256 of the token


class TokenTable:
    """The configured tokens, held only as SHA-256 digests (``streams.settings.ingest_token_digests``)."""

    def __init__(self, digests: Mapping[str, frozenset[str]]) -> None:
        self._grants = tuple(
            TokenGrant(position, families, bytes.fromhex(digest))
            for position, (digest, families) in enumerate(digests.items(), start=1)
        )

    def __len__(self) -> int:
        return len(self._grants)

    def authorize(self, token: str) -> TokenGrant | None:
        """The grant of ``token``, or None when no configured token is ``token``.

        The presented token is hashed and compared with every configured digest, always all
        of them, with ``hmac.compare_digest``: neither how long a comparison takes nor how
        many are made tells a caller how close a guess came or which key matched.
        """
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for grant in self._grants:
            if hmac.compare_digest(digest, grant.digest):
                found = grant
        return found


__all__ = ["TokenGrant", "TokenTable"]
