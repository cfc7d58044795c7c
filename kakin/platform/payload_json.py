"""The JSON kakin writes into Temporal payloads: the SDK's, with defaults left out.

Every payload is stored in the workflow's history (a renewal writes its carried state
twice: as the new run's input and in the old run's ``ContinuedAsNew`` event), and is
billed as history bytes. So, on encoding:

* a dataclass field whose value is its default and one of ``None``, ``False``, ``0``,
  ``""`` or an empty list is left out (decoding fills it from the default again);
* a dunning ladder is written as its text form (``"3:retry,7:retry,..."``).

Decoding accepts both this form and the SDK's full one, so histories and requests
written before (or by other clients) still decode. ``StatusView``, the answer to the
``status`` query and to support updates, keeps every field: other services read it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
)

from billing.dunning import DunningPolicy, format_policy, parse_policy
from models.payloads import StatusView

_EMPTY: tuple[Any, ...] = (None, False, 0, "")


def _is_empty_default(field: dataclasses.Field[Any], value: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return False  # required: always written
    empty = value == [] if isinstance(value, list) else value in _EMPTY
    return empty and type(value) is type(default) and value == default


class CompactJSONEncoder(AdvancedJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, DunningPolicy):
            return format_policy(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type | StatusView):
            # Not dataclasses.asdict: nested values come back here one by one.
            return {
                f.name: getattr(o, f.name)
                for f in dataclasses.fields(o)
                if not _is_empty_default(f, getattr(o, f.name))
            }
        return super().default(o)


class _DunningPolicyFromText(JSONTypeConverter):
    def to_typed_value(self, hint: type, value: Any) -> Any:
        if hint is DunningPolicy and isinstance(value, str):
            return parse_policy(value)
        return JSONTypeConverter.Unhandled


class CompactPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, with the JSON one writing compact JSON."""

    def __init__(self) -> None:
        super().__init__(
            *(
                JSONPlainPayloadConverter(
                    encoder=CompactJSONEncoder, custom_type_converters=[_DunningPolicyFromText()]
                )
                if isinstance(converter, JSONPlainPayloadConverter)
                else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
