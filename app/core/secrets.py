"""Secrets at rest (accounting credentials, webhook signing secrets): Fernet (AES-128-CBC +
HMAC-SHA256, from ``cryptography``) under a key derived from ``CRM_SECRET_KEY`` with
HKDF-SHA256, one key per purpose."""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.errors import AppError

MIN_SECRET_KEY_LENGTH = 16


class SecretKeyMissing(AppError):
    status, title, default_code = 409, "Conflict", "secret_key_not_configured"


def _fernet(secret_key: str, purpose: str) -> Fernet:
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise SecretKeyMissing(
            f"Set CRM_SECRET_KEY (at least 16 characters) on the server to store {purpose} secrets."
        )
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"crm-overview {purpose}".encode()
    ).derive(secret_key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret_key: str, values: dict[str, str], purpose: str = "accounting") -> str:
    return _fernet(secret_key, purpose).encrypt(json.dumps(values).encode()).decode("ascii")


def decrypt(secret_key: str, token: str, purpose: str = "accounting") -> dict[str, str]:
    try:
        data = json.loads(_fernet(secret_key, purpose).decrypt(token.encode("ascii")))
    except InvalidToken:
        raise SecretKeyMissing(
            "The stored credentials cannot be read with the current CRM_SECRET_KEY; "
            "store them again.",
            code="credentials_unreadable",
        ) from None
    return {str(k): str(v) for k, v in data.items()}
