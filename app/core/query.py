"""Strict query strings, for every API route at once.

FastAPI reads the query parameters a route declares (in its signature or in any dependency,
however deeply nested) and ignores every other one, and for a single-value parameter given
twice it silently keeps the last. A typo (``?serach=x``) then answers everything, and
``?limit=5&limit=10`` answers one of the two. Here both are 422 problem+json naming the
parameter (``unknown_query_parameter``, ``repeated_query_parameter``; ``loc`` is
``["query", name]``); list parameters (``customer_stage``, ``tag``, ``status``...) stay
repeatable.

The allowed names come from the route's own dependency tree, so the check can never disagree
with what the route (and the contract generated from it) declares. It is one dependency,
given to ``include_router`` for the API routers; ``query_model_dependency`` turns a pydantic
model into the query parameters of a dependency, so a set of filters is declared once.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from types import NoneType, UnionType
from typing import Annotated, Any, TypeVar, Union, cast, get_args, get_origin

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from pydantic import AliasChoices, BaseModel

from app.core.errors import FieldError, ValidationFailed

M = TypeVar("M", bound=BaseModel)

UNKNOWN = "unknown_query_parameter"
REPEATED = "repeated_query_parameter"
# The most problems one answer lists (the detail counts them all): a query string of
# thousands of junk names does not make an answer many times its size.
MAX_LISTED = 20

_SEQUENCES = (list, tuple, set, frozenset, Sequence)


def _is_sequence(annotation: Any) -> bool:
    """Whether FastAPI reads a parameter of this type as a list (every occurrence)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_sequence(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return any(_is_sequence(a) for a in get_args(annotation) if a is not NoneType)
    kind = origin or annotation
    return isinstance(kind, type) and issubclass(kind, _SEQUENCES) and not issubclass(kind, str)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a query parameter that FastAPI expands into its fields."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Union or get_origin(annotation) is UnionType:
        args = [a for a in get_args(annotation) if a is not NoneType]
        annotation = args[0] if len(args) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _names(name: str, alias: str | None, validation_alias: Any, by_name: bool) -> list[str]:
    if isinstance(validation_alias, str):
        names = [validation_alias]
    elif isinstance(validation_alias, AliasChoices):
        names = [c for c in validation_alias.choices if isinstance(c, str)]
    else:
        names = [alias or name]
    return [*names, name] if by_name and name not in names else names


def declared_query_parameters(dependant: Dependant) -> dict[str, bool]:
    """Every query parameter name a route (``route.dependant``) reads, mapped to whether it
    is repeatable (a list); nested dependencies and pydantic query models included."""
    out: dict[str, bool] = {}
    pending = [dependant]
    while pending:
        current = pending.pop()
        pending.extend(current.dependencies)
        for field in current.query_params:
            annotation = field.field_info.annotation
            model = _model_of(annotation)
            if model is None:
                names = _names(field.name, field.alias, field.field_info.validation_alias, False)
                out.update(dict.fromkeys(names, _is_sequence(annotation)))
                continue
            by_name = bool(
                model.model_config.get("validate_by_name")
                or model.model_config.get("populate_by_name")
            )
            for name, info in model.model_fields.items():
                names = _names(name, info.alias, info.validation_alias, by_name)
                out.update(dict.fromkeys(names, _is_sequence(info.annotation)))
    return out


# Per route object, computed on its first request (the entry keeps the route alive, so its
# ``id`` is never reused for another).
_DECLARED: dict[int, tuple[APIRoute, dict[str, bool]]] = {}


def _declared_for(route: APIRoute) -> dict[str, bool]:
    entry = _DECLARED.get(id(route))
    if entry is None or entry[0] is not route:
        entry = _DECLARED[id(route)] = (route, declared_query_parameters(route.dependant))
    return entry[1]


def query_errors(declared: dict[str, bool], given: Sequence[tuple[str, str]]) -> list[FieldError]:
    """The unknown and the repeated single-value parameters among ``given``, in order."""
    errors = []
    for name, count in Counter(name for name, _ in given).items():
        if name not in declared:
            takes = ", ".join(sorted(declared)) or "none"
            message = f"unknown query parameter {name!r} (this operation takes: {takes})"
            errors.append(FieldError(("query", name), message, UNKNOWN))
        elif count > 1 and not declared[name]:
            message = f"{name!r} takes one value; it was given {count} times"
            errors.append(FieldError(("query", name), message, REPEATED))
    return errors


def check_query(request: Request) -> None:
    """422 when the query string has a parameter the route does not declare, or a
    single-value one more than once."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    errors = query_errors(_declared_for(route), request.query_params.multi_items())
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationFailed(
            f"query.{first.loc[1]}: {first.message}{more}",
            code=first.code,
            errors=errors[:MAX_LISTED],
        )


def strict_query(*, after: Callable[..., Any] | None = None) -> DependsParam:
    """The dependency that runs ``check_query``, for ``include_router(dependencies=...)``.

    ``after``: a dependency to resolve first (authentication), so a request without a
    valid token still answers 401, and counts against the rate limit, before its query
    string is judged. FastAPI caches it per request: it still runs once.
    """

    async def strict_query_parameters(request: Request, **_: Any) -> None:
        check_query(request)

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    ]
    if after is not None:
        parameters.append(
            inspect.Parameter(
                "_after",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[Any, Depends(after)],
            )
        )
    strict_query_parameters.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return Depends(strict_query_parameters)


def declare_strict_query(schema: dict[str, Any], prefix: str = "/api/") -> None:
    """In an OpenAPI document: every operation under ``prefix`` can answer 422 (an unknown or
    repeated query parameter), also one that takes no input otherwise."""
    for path, item in schema.get("paths", {}).items():
        if path.startswith(prefix):
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault("422", {"description": "Validation failed"})


def query_model_dependency(model: type[M], name: str) -> Callable[..., Awaitable[M]]:
    """A FastAPI dependency reading ``model``'s fields from the query string, one parameter
    per field (its type, constraints, default and description), and answering the model.

    The model stays the one declaration of those parameters: the same model can also be a
    request body (e.g. a bulk change's ``filter``).
    """
    parameters = []
    annotations: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if not info.is_required() and info.default_factory is not None:
            raise TypeError(f"{model.__name__}.{field_name}: a default factory is not supported")
        query = Query(description=info.description, alias=info.alias)
        annotation = cast(Any, Annotated)[(info.annotation, *info.metadata, query)]
        annotations[field_name] = annotation
        parameters.append(
            inspect.Parameter(
                field_name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if info.is_required() else info.default,
                annotation=annotation,
            )
        )

    async def dependency(**values: Any) -> M:
        return model(**values)

    dependency.__name__ = dependency.__qualname__ = name
    dependency.__doc__ = f"The query parameters of {model.__name__}."
    dependency.__signature__ = inspect.Signature(parameters, return_annotation=model)  # type: ignore[attr-defined]
    dependency.__annotations__ = {**annotations, "return": model}
    return dependency
