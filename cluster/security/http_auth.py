"""Who may read the admin data of a node's HTTP port (the cluster page's JSON): the frontend's own claim
mapper and authorizer, asked about `ClusterService/Status`, so exactly who may run `hourglass cluster
status` may read the page (a system admin with the default authorizer), and a plugged-in authorizer
decides both the same way."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hourglass.cluster.security.authorization import CLUSTER_SERVICE, CallTarget
from hourglass.cluster.security.claims import AuthInfo, InvalidToken

log = logging.getLogger(__name__)

STATUS_METHOD = CLUSTER_SERVICE + "Status"


@dataclass(frozen=True)
class Verdict:
    """`status` is the HTTP status to answer: 200 allowed, 401 no or invalid credentials, 403 not allowed."""

    status: int
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


class AdminGate:
    def __init__(self, claim_mapper: Any, authorizer: Any) -> None:
        self.claim_mapper = claim_mapper
        self.authorizer = authorizer

    async def check(self, authorization: str) -> Verdict:
        """Decide a request by its `Authorization` header ("" when absent). Runs on the event loop."""
        if not authorization:
            return Verdict(401, "no credentials")
        try:
            claims = self.claim_mapper.get_claims(AuthInfo(authorization))
            result = await self.authorizer.authorize(claims, CallTarget(STATUS_METHOD))
        except InvalidToken as e:
            log.info("cluster page: invalid token: %s", e)
            return Verdict(401, "invalid token")
        except Exception:  # a plugged-in mapper or authorizer failing denies, as on the gRPC port
            log.exception("cluster page: authorization failed")
            return Verdict(403, "authorization failed")
        if not result.allowed:
            log.info("cluster page: request unauthorized: subject=%s", getattr(claims, "subject", "") or "-")
            return Verdict(403, result.reason or "admin role required")
        return Verdict(200)
