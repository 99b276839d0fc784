"""The problem+json document, as a schema for the OpenAPI contract."""

from pydantic import BaseModel, ConfigDict, Field


class ProblemFieldError(BaseModel):
    loc: list[str | int] = Field(description='Where: e.g. ["body", "tags", 0]')
    message: str
    code: str
    row: int | None = Field(
        default=None,
        description="A file's errors (the partner import): the row as a spreadsheet numbers it "
        "(the header is row 1)",
    )
    column: str | None = Field(
        default=None,
        description="A file's errors: the column's header, or null for the whole row",
    )


class Problem(BaseModel):
    """RFC 9457 problem details with a stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, snake_case: switch on this")
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None
