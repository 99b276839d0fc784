"""API token secrets: random, shown once, stored as a SHA-256 hash.

A token is ``crm_<secret>_<company>``: 256 random bits, then the company's id (22 base64url
characters), so the lookup is by ``(company_id, token_hash)``. Every key of company data then
leads with ``company_id`` (the schema is ready to be distributed by company), and a token of
one company can never be looked up in another's. The company part is no secret: the hash
covers the whole token. Tokens minted before the company part existed (``crm_<secret>``) are
still looked up by their hash alone, until they are replaced.
"""

import base64
import binascii
import hashlib
import secrets
import uuid

TOKEN_PREFIX = "crm_"  # noqa: S105 (a public marker, not a secret)
MAX_TOKEN_LENGTH = 200
_COMPANY_CHARS = 22  # a UUID's 16 bytes in unpadded base64url
_SECRET_CHARS = 43  # 32 random bytes in unpadded base64url


def _company_part(company_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(company_id.bytes).rstrip(b"=").decode("ascii")


def new_secret(company_id: uuid.UUID) -> str:
    return f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}_{_company_part(company_id)}"


def company_of(secret: str) -> uuid.UUID | None:
    """The company a token names, or None for a token without one (minted before tokens
    carried their company) or a malformed one."""
    if len(secret) != len(TOKEN_PREFIX) + _SECRET_CHARS + 1 + _COMPANY_CHARS:
        return None
    if not secret.startswith(TOKEN_PREFIX) or secret[-_COMPANY_CHARS - 1] != "_":
        return None
    try:
        raw = base64.urlsafe_b64decode(secret[-_COMPANY_CHARS:] + "==")
    except (binascii.Error, ValueError):
        return None
    return uuid.UUID(bytes=raw) if len(raw) == 16 else None


def hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash suffices: nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(TOKEN_PREFIX) + 6]
