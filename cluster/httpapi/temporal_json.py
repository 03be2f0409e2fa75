"""Protobuf JSON as the reference's HTTP API writes and reads it (go.temporal.io/api's `temporalproto`).

It is proto3 JSON (camelCase names, 64-bit integers as strings, enums by name, RFC 3339 times) with
Temporal's additions, checked byte for byte against the reference server:
- payload shorthand: a `Payload` whose only metadata is `encoding: json/plain` is written as its JSON value,
  `binary/null` as `{"metadata":{"encoding":"YmluYXJ5L251bGw="}}`, `json/protobuf` as its object plus a
  `_protoMessageType` key; `Payloads` as an array when every payload has a shorthand. On input any JSON value
  is taken as a `json/plain` payload (null as `binary/null`) unless it is a full `{metadata, data}` payload;
- enums are also read by their short name (`"Normal"` for `TASK_QUEUE_KIND_NORMAL`);
- fields in declaration order, map keys sorted, numbers in Go's shortest form (`1`, not `1.0`).

`noPayloadShorthand` (the reference's query parameter) turns the first addition off.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from decimal import Decimal
from functools import cache
from typing import Any

from google.protobuf import json_format, symbol_database
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

PAYLOAD = "temporal.api.common.v1.Payload"
PAYLOADS = "temporal.api.common.v1.Payloads"
MESSAGE_TYPE_KEY = "_protoMessageType"
BINARY_NULL_B64 = base64.b64encode(b"binary/null").decode()
ANY = "google.protobuf.Any"
# Messages whose JSON form is not an object of their fields: protobuf's own conversion writes them.
_WELL_KNOWN = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Empty",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
}
_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_INTEGERS = _INT64 | {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED32,
}
_FLOATS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_INT64_RANGE = (-(2**63), 2**63 - 1)


class JSONInputError(ValueError):
    """A request body or parameter that is not valid JSON for its message (INVALID_ARGUMENT, HTTP 400)."""


class GoFloat(float):
    """A JSON number written as Go writes a float64: shortest digits, no `.0`, exponent only outside
    [1e-6, 1e21) (`2e+30`, `1e-7`)."""


def format_number(value: float) -> str:
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        text = format(Decimal(repr(float(value))).normalize(), "f")
        return text
    mantissa, exponent = repr(float(value)).split("e")
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


# ----------------------------------------------------------------------------------------------- output


def to_json(message: Message, *, shorthand: bool = True, indent: int | None = None) -> str:
    """`message` as the reference's HTTP API writes it (compact, or indented by `indent` spaces)."""
    return dumps(to_value(message, shorthand=shorthand), indent)


def to_value(message: Message, *, shorthand: bool = True) -> Any:
    """The JSON value (dicts, lists, str, GoFloat...) of `message`; `dumps` writes it."""
    return _message_value(message, shorthand)


def _message_value(msg: Message, shorthand: bool) -> Any:
    name = msg.DESCRIPTOR.full_name
    if name in _WELL_KNOWN:
        return json_format.MessageToDict(msg)
    if name == ANY:
        return _any_value(msg, shorthand)
    if shorthand and name == PAYLOAD:
        handled, value = _payload_shorthand(msg)
        if handled:
            return value
    if shorthand and name == PAYLOADS:
        values = []
        for payload in msg.payloads:
            handled, value = _payload_shorthand(payload)
            if not handled:
                break
            values.append(value)
        else:
            return values
    out: dict[str, Any] = {}
    for field, value in sorted(msg.ListFields(), key=lambda fv: fv[0].index):
        if field.is_extension:
            continue
        out[field.json_name] = _field_value(field, value, shorthand)
    return out


def _field_value(field: FieldDescriptor, value: Any, shorthand: bool) -> Any:
    if _is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        items = [(_map_key(key_field, k), v) for k, v in value.items()]
        return {k: _single_value(value_field, v, shorthand) for k, v in sorted(items)}
    if field.is_repeated:
        return [_single_value(field, v, shorthand) for v in value]
    return _single_value(field, value, shorthand)


def _map_key(field: FieldDescriptor, key: Any) -> str:
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if key else "false"
    return str(key)


def _single_value(field: FieldDescriptor, value: Any, shorthand: bool) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE or kind == FieldDescriptor.TYPE_GROUP:
        return _message_value(value, shorthand)
    if kind == FieldDescriptor.TYPE_ENUM:
        described = field.enum_type.values_by_number.get(value)
        return described.name if described is not None else value
    if kind in _INT64:
        return str(value)
    if kind in _FLOATS:
        return GoFloat(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _any_value(msg: Message, shorthand: bool) -> Any:
    type_name = msg.type_url.rsplit("/", 1)[-1]
    try:
        inner = symbol_database.Default().GetSymbol(type_name)()
    except KeyError:
        return json_format.MessageToDict(msg)
    msg.Unpack(inner)
    value = _message_value(inner, shorthand)
    if not isinstance(value, dict) or type_name in _WELL_KNOWN:
        return {"@type": msg.type_url, "value": value}
    return {"@type": msg.type_url, **value}


def _payload_shorthand(payload: Message) -> tuple[bool, Any]:
    """(True, value) when the reference writes `payload` in shorthand."""
    metadata = payload.metadata
    encoding = metadata.get("encoding")
    if encoding == b"binary/null":
        return True, {"metadata": {"encoding": BINARY_NULL_B64}}
    if encoding == b"json/plain" and len(metadata) == 1:
        inexact = []  # a float, or an integer a float64 cannot hold: only then Go's form differs
        try:
            value = json.loads(
                payload.data,
                parse_float=lambda text: inexact.append(text) or float(text),
                parse_int=lambda text: _int_or_mark(text, inexact),
            )
        except ValueError:
            return False, None
        if value is None:  # Go decodes `null` to nil, which it writes as binary/null
            return True, {"metadata": {"encoding": BINARY_NULL_B64}}
        if not inexact:
            # Fast path, in C: what Go writes for a value of strings, integers, booleans and nulls.
            return True, RawJSON(json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
        return True, _go_value(value)
    if encoding == b"json/protobuf" and metadata.get("messageType") and len(metadata) == 2:
        try:
            value = json.loads(payload.data)
        except ValueError:
            return False, None
        if not isinstance(value, dict):
            return False, None
        value = _go_value(value)
        value[MESSAGE_TYPE_KEY] = metadata["messageType"].decode(errors="replace")
        return True, dict(sorted(value.items()))
    return False, None


class RawJSON(str):
    """JSON text written as is (compact form only: `dumps` with an indent re-reads it)."""


def _int_or_mark(text: str, inexact: list) -> int:
    value = int(text)
    if abs(value) > 2**53:  # Go reads every number as a float64: beyond 2^53 an integer is rounded
        inexact.append(text)
    return value


def _go_value(value: Any) -> Any:
    """A decoded JSON value as Go's `interface{}` holds it: maps sorted, every number a float64."""
    if isinstance(value, dict):
        return {k: _go_value(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_go_value(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return GoFloat(value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _string(text: str) -> str:
    """A JSON string as protojson writes it: only quotes, backslashes and control characters escaped."""
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES.get(m[0]) or f"\\u{ord(m[0]):04x}", text) + '"'


def dumps(value: Any, indent: int | None = None) -> str:
    """Write a value of `to_value` as JSON text (no spaces; or `indent` spaces, `": "` after names)."""
    parts: list[str] = []
    _dump(value, parts, indent, 0)
    return "".join(parts)


def _dump(value: Any, out: list[str], indent: int | None, depth: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, RawJSON):
        if indent:
            _dump(_go_value(json.loads(value)), out, indent, depth)
        else:
            out.append(value)
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, dict):
        _dump_items(
            [(_string(k) + (": " if indent else ":"), v) for k, v in value.items()], "{}", out, indent, depth
        )
    else:
        _dump_items([("", v) for v in value], "[]", out, indent, depth)


def _dump_items(items: list[tuple[str, Any]], brackets: str, out: list[str], indent, depth: int) -> None:
    out.append(brackets[0])
    if not items:
        out.append(brackets[1])
        return
    for i, (prefix, item) in enumerate(items):
        if i:
            out.append(",")
        if indent:
            out.append("\n" + " " * (indent * (depth + 1)))
        out.append(prefix)
        _dump(item, out, indent, depth + 1)
    if indent:
        out.append("\n" + " " * (indent * depth))
    out.append(brackets[1])


# ------------------------------------------------------------------------------------------------ input


def from_json(text: bytes | str, message_class: type[Message], *, shorthand: bool = True) -> Message:
    """Parse a request body; raises JSONInputError naming the problem."""
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, UnicodeDecodeError) as e:
        raise JSONInputError(f"invalid JSON: {e}") from None
    message = message_class()
    merge_value(message, value, shorthand=shorthand)
    return message


def merge_value(message: Message, value: Any, *, shorthand: bool = True) -> None:
    """Merge a decoded JSON value into `message` (its fields by JSON or proto name)."""
    canonical = _canonical_message(message.DESCRIPTOR, value, shorthand, message.DESCRIPTOR.name)
    try:
        json_format.ParseDict(canonical, message)
    except json_format.ParseError as e:
        raise JSONInputError(_parse_error_text(e)) from None


def _parse_error_text(error: Exception) -> str:
    text = str(error)
    # protobuf lists every available field after an unknown one: the name is what a caller needs.
    return text.split(". Available Fields", 1)[0]


@cache
def _fields_by_json_key(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    fields = {}
    for field in descriptor.fields:
        fields[field.name] = field
        fields[field.json_name] = field
    return fields


def _canonical_message(descriptor: Descriptor, value: Any, shorthand: bool, where: str) -> Any:
    """`value` rewritten as plain proto3 JSON for `descriptor`: shorthand payloads expanded, short enum
    names made full. Anything else is left for protobuf's parser to accept or name."""
    name = descriptor.full_name
    if name in _WELL_KNOWN or name == ANY:
        return value
    if shorthand and name == PAYLOAD:
        return _payload_from_json(value)
    if shorthand and name == PAYLOADS and isinstance(value, list):
        return {"payloads": [_payload_from_json(v) for v in value]}
    if not isinstance(value, dict):
        return value
    fields = _fields_by_json_key(descriptor)
    out = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            raise JSONInputError(f'unknown field "{key}" in {where}')
        out[key] = _canonical_field(field, item, shorthand, f"{where}.{key}")
    return out


def _canonical_field(field: FieldDescriptor, value: Any, shorthand: bool, where: str) -> Any:
    if value is None:
        return None
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        if not isinstance(value, dict):
            return value
        return {k: _canonical_single(value_field, v, shorthand, f"{where}[{k}]") for k, v in value.items()}
    if field.is_repeated and isinstance(value, list):
        return [_canonical_single(field, v, shorthand, where) for v in value]
    return _canonical_single(field, value, shorthand, where)


def _canonical_single(field: FieldDescriptor, value: Any, shorthand: bool, where: str) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _canonical_message(field.message_type, value, shorthand, where)
    if field.type == FieldDescriptor.TYPE_ENUM and isinstance(value, str):
        return enum_name(field.enum_type, value)
    return value


def enum_name(enum: EnumDescriptor, value: str) -> str:
    """The full name of an enum value given by its full or short name (`Normal`); else `value` itself."""
    return _short_enum_names(enum).get(value, value)


@cache
def _short_enum_names(enum: EnumDescriptor) -> dict[str, str]:
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    names = {}
    for v in enum.values:
        if v.name.startswith(prefix):
            short = "".join(part.capitalize() for part in v.name[len(prefix) :].split("_"))
            names[short] = v.name
    return names


def _payload_from_json(value: Any) -> Any:
    """A payload as the reference reads it: a full `{metadata, data}` payload, else shorthand."""
    if value is None:
        return {"metadata": {"encoding": BINARY_NULL_B64}}
    if isinstance(value, dict):
        full = _full_payload(value)
        if full is not None:
            return full
        message_type = value.get(MESSAGE_TYPE_KEY)
        if isinstance(message_type, str) and message_type:
            rest = {k: v for k, v in value.items() if k != MESSAGE_TYPE_KEY}
            return {
                "metadata": {
                    "encoding": base64.b64encode(b"json/protobuf").decode(),
                    "messageType": base64.b64encode(message_type.encode()).decode(),
                },
                "data": base64.b64encode(go_marshal(rest).encode()).decode(),
            }
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(go_marshal(value).encode()).decode(),
    }


def _full_payload(value: dict) -> dict | None:
    metadata = value.get("metadata")
    if not isinstance(metadata, dict) or "encoding" not in metadata:
        return None
    if "data" not in value and len(value) == 1 and metadata["encoding"] == BINARY_NULL_B64:
        return {"metadata": {"encoding": BINARY_NULL_B64}}
    if set(value) != {"metadata", "data"} or not isinstance(value["data"], str):
        return None
    if not all(isinstance(v, str) and _is_base64(v) for v in [value["data"], *metadata.values()]):
        return None
    return value


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(
            text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None
        )
    except (binascii.Error, ValueError):
        return False
    return True


def go_marshal(value: Any) -> str:
    """Go's `json.Marshal` of a decoded value, which is what the reference stores as a shorthand payload's
    data: compact, keys sorted, integers beyond int64 as float64, `<`, `>`, `&` escaped."""
    return (
        dumps(_go_stored(value))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_stored(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _go_stored(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_go_stored(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and _INT64_RANGE[0] <= value <= _INT64_RANGE[1]:
        return value
    return GoFloat(value)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and field.is_repeated
    )
