"""Who the caller is and what roles it holds: the reference's Claims, and its default JWT claim mapper
(`authorization: Bearer <jwt>` verified against the key provider's keys; a `permissions` claim of
`namespace:role` entries, `temporal-system:<role>` being the role over the whole cluster)."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hourglass.cluster.security.jwt_keys import JWTKeyProvider

log = logging.getLogger(__name__)

SYSTEM_NAMESPACE = "temporal-system"
ALGORITHMS = ("RS256", "ES256")
# Verified tokens remembered (a worker sends the same one with every poll; a signature check costs
# about half a millisecond): until the token expires, at most this long, and only while the key set
# that verified it is current.
CACHE_SIZE = 4096
CACHE_TTL_S = 300.0


class Role(enum.IntFlag):
    """A bitmask, as the reference's: a caller may hold several roles; checks compare `>=` a role, so
    admin implies writer implies reader (worker alone is below reader)."""

    UNDEFINED = 0
    WORKER = 1
    READER = 2
    WRITER = 4
    ADMIN = 8


ROLE_NAMES = {"read": Role.READER, "write": Role.WRITER, "worker": Role.WORKER, "admin": Role.ADMIN}


@dataclass
class Claims:
    subject: str = ""
    # Role over the whole cluster (every namespace and the cluster-scoped APIs).
    system: Role = Role.UNDEFINED
    # Roles per namespace name.
    namespaces: dict[str, Role] = field(default_factory=dict)
    extra: Any = None


@dataclass(frozen=True)
class AuthInfo:
    """What a request presents: the `authorization` header and the `authorization-extras` header."""

    auth_token: str = ""
    extra_data: str = ""


class InvalidToken(Exception):
    """The token is malformed, expired, or not signed by a known key. Callers see only
    "Request unauthorized."; the reason is for the server's log."""


class ClaimMapper(Protocol):
    def get_claims(self, auth: AuthInfo) -> Claims:
        """Claims for the request; raise InvalidToken if what it presents cannot be trusted."""
        ...


def parse_permissions(permissions: Any, claims: Claims) -> None:
    """Fold `namespace:role` strings into `claims`; entries of another shape are ignored (and logged)."""
    if not isinstance(permissions, list):
        return
    for permission in permissions:
        if not isinstance(permission, str) or ":" not in permission:
            log.warning("ignoring permission in unexpected format: %r", permission)
            continue
        namespace, _, role_name = permission.partition(":")
        role = ROLE_NAMES.get(role_name.lower(), Role.UNDEFINED)
        if namespace == SYSTEM_NAMESPACE:
            claims.system |= role
        else:
            claims.namespaces[namespace] = claims.namespaces.get(namespace, Role.UNDEFINED) | role


class DefaultJWTClaimMapper:
    """RS256 / ES256 bearer tokens; `kid` picks the key. No token: empty claims (the authorizer then
    denies all but health checks). The Claims returned may be shared between calls: do not modify them."""

    def __init__(self, keys: JWTKeyProvider, permissions_claim_name: str = "permissions") -> None:
        self.keys = keys
        self.permissions_claim_name = permissions_claim_name or "permissions"
        self._cache: dict[str, tuple[Claims, float, object]] = {}

    def get_claims(self, auth: AuthInfo) -> Claims:
        if not auth.auth_token:
            return Claims()
        now = time.time()
        cached = self._cache.get(auth.auth_token)
        if cached is not None and now < cached[1] and cached[2] is self.keys.keys:
            return cached[0]
        claims, expires = self._map(auth.auth_token)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[auth.auth_token] = (claims, min(expires, now + CACHE_TTL_S), self.keys.keys)
        return claims

    def _map(self, header: str) -> tuple[Claims, float]:
        scheme, _, token = header.partition(" ")
        if not token:
            raise InvalidToken("unexpected authorization token format")
        if scheme.lower() != "bearer":
            raise InvalidToken("unexpected name in authorization token")
        payload = self._verify(token.strip())
        subject = payload.get("sub")
        if not isinstance(subject, str):
            raise InvalidToken('unexpected value type of "sub" claim')
        claims = Claims(subject=subject)
        parse_permissions(payload.get(self.permissions_claim_name), claims)
        exp = payload.get("exp")
        return claims, float(exp) if isinstance(exp, int | float) else float("inf")

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise InvalidToken(f"malformed token: {e}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"unexpected signing algorithm: {alg}")
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        # The algorithm fixes the key type: an RSA key never verifies an ES256 token, nor the reverse.
        want = rsa.RSAPublicKey if alg == "RS256" else ec.EllipticCurvePublicKey
        keys = [k for k in self.keys.keys.candidates(kid) if isinstance(k, want)]
        if not keys:
            raise InvalidToken(f"no {alg} key for key ID {kid}")
        last: Exception | None = None
        for key in keys:
            try:
                # The reference checks `aud` only when an audience is configured; Hourglass has none.
                return jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False})
            except jwt.InvalidSignatureError as e:
                last = e  # another unnamed key may be the signer
            except jwt.PyJWTError as e:  # expired, not yet valid, malformed claims
                raise InvalidToken(str(e)) from None
        raise InvalidToken(f"signature not verified by any key for key ID {kid}: {last}")
