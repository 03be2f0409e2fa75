"""Signing keys and tokens made inside the tests (no key is committed) and a JWKS endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        jwk = algo.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self,
        permissions: list[str] | None,
        *,
        subject: str = "tester",
        expires_in: float = 600,
        kid: str | None = "",
        claim: str = "permissions",
    ) -> str:
        """A signed JWT; `kid=""` uses this key's own kid, None leaves the header without one."""
        now = int(time.time())
        payload: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + int(expires_in)}
        if permissions is not None:
            payload[claim] = permissions
        headers = {} if kid is None else {"kid": kid or self.kid}
        return jwt.encode(payload, self.private, algorithm=self.alg, headers=headers)


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class JWKSServer:
    """Serves {"keys": [...]} at /jwks.json; `keys` may change while it runs (key rotation)."""

    keys: list[SigningKey] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                body = json.dumps({"keys": [k.public_jwk() for k in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, name="jwks", daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


@dataclass
class JWTKeys:
    rsa: SigningKey  # published in the JWKS
    ec: SigningKey  # published in the JWKS
    ec_file: SigningKey  # a PEM file, kid from the URI fragment
    rsa_file: SigningKey  # a PEM file without a kid: tried for any token whose kid is unknown
    stranger: SigningKey  # published nowhere
    jwks: JWKSServer
    pem_dir: Path

    def key_source_uris(self) -> list[str]:
        return [
            self.jwks.url,
            (self.pem_dir / "ec.pem").as_uri() + f"#{self.ec_file.kid}",
            (self.pem_dir / "rsa.pem").as_uri(),
        ]


def make_keys(pem_dir: Path) -> JWTKeys:
    """Fresh keys, the PEM files written to `pem_dir`, the JWKS (rsa, ec) served: stop `.jwks` after."""
    keys = JWTKeys(
        rsa=rsa_key("rsa-1"),
        ec=ec_key("ec-1"),
        ec_file=ec_key("ec-file"),
        rsa_file=rsa_key("rsa-file"),
        stranger=rsa_key("rsa-1"),  # claims the published kid: its signature must not verify
        jwks=JWKSServer(),
        pem_dir=pem_dir,
    )
    (pem_dir / "ec.pem").write_bytes(keys.ec_file.public_pem())
    (pem_dir / "rsa.pem").write_bytes(keys.rsa_file.public_pem())
    keys.jwks.keys = [keys.rsa, keys.ec]
    keys.jwks.start()
    return keys
