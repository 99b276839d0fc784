"""API token secrets: random, shown once, stored as a SHA-256 hash."""

import hashlib
import secrets

TOKEN_PREFIX = "crm_"  # noqa: S105 (a public marker, not a secret)
MAX_TOKEN_LENGTH = 200


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash suffices: nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(TOKEN_PREFIX) + 6]
