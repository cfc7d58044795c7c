"""What every view shares: reading a row field by field, and a page of a list."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


def columns(source: Any, model: type[BaseModel], **computed: Any) -> dict[str, Any]:
    """``model``'s fields read off ``source`` by name, with ``computed`` for the others.

    A field ``source`` lacks (``object``, a constant) keeps its default; a field whose
    attribute means something else on a table row (``metadata`` is SQLAlchemy's) must be
    given in ``computed``.
    """
    read = {
        name: getattr(source, name)
        for name in model.model_fields
        if name not in computed and hasattr(source, name)
    }
    return {**read, **computed}


class FromRow(BaseModel):
    """A response read straight off a table row, field by field of the same name."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, row: Any) -> Any:
        return cls.model_validate(row)


class Page(BaseModel, Generic[T]):
    """A page of a list, newest first; pass the last id as ``starting_after`` for more."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
