"""Entity tags from what identifies a representation's state (its ``version`` column, or the
moments an immutable resource was created and last changed), and ``If-Match``: no rendered
body is hashed, and every process gives the same tag."""

from __future__ import annotations

import re
from datetime import datetime

from app.core.errors import BadRequest, FieldError, PreconditionFailed

# ``If-Match`` (RFC 9110 13.1.1): ``*`` or a comma-separated list of entity tags, each
# ``"..."`` or weak ``W/"..."``, with optional whitespace and empty list elements. Written so
# that no input backtracks much, and valid both in Python and as an OpenAPI ``pattern``.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7E\x80-\xFF]*"'
IF_MATCH_PATTERN = (
    r"^(?:[ \t]*\*[ \t]*"
    rf"|(?:[ \t]*,)*[ \t]*{_ENTITY_TAG}(?:(?:[ \t]*,)+[ \t]*{_ENTITY_TAG})*(?:[ \t]*,)*[ \t]*)$"
)
_IF_MATCH = re.compile(IF_MATCH_PATTERN)
_ENTITY_TAGS = re.compile(_ENTITY_TAG)


def etag(*parts: object) -> str:
    """A strong entity tag: ``"3"`` for version 3, ``"7.12"`` for two versions."""
    return '"' + ".".join(str(p) for p in parts) + '"'


def moment(value: datetime | None) -> int:
    """A timestamp as an ETag part (microseconds since the epoch; 0 for none)."""
    return 0 if value is None else int(value.timestamp() * 1_000_000)


def check_if_match(if_match: str | None, current: str) -> None:
    """``If-Match`` (strong comparison): 400 when it is malformed (naming the header, never
    read as "changed since you read it"), 412 unless it names the current entity tag."""
    if if_match is None:
        return
    if not _IF_MATCH.fullmatch(if_match):
        raise BadRequest(
            "The If-Match header is malformed: it takes * or a comma-separated list of quoted "
            'entity tags (e.g. "3"), as the ETag header gives them.',
            code="invalid_if_match",
            errors=[
                FieldError(
                    ("header", "If-Match"),
                    "must be * or a list of quoted entity tags",
                    "invalid_if_match",
                )
            ],
        )
    if if_match.strip() == "*":
        return
    if current not in _ENTITY_TAGS.findall(if_match):
        raise PreconditionFailed(
            "The resource has changed since you read it (If-Match does not match its ETag).",
            code="etag_mismatch",
            errors=[FieldError(("header", "If-Match"), "does not match the ETag", "etag_mismatch")],
            headers={"ETag": current},
        )
