"""The per-namespace registry of custom search attributes, and the checks that depend on it.

Three users: the OperatorService (add, remove, list), list queries (whose attribute names and literal
types are checked against it), and starting / upserting workflows (whose search attributes must be
registered and of the right type). Messages follow the reference's, so clients see familiar errors.

Registrations are cached per namespace for a few seconds: every list query and every start needs them,
and on a multi-node cluster another node's change becomes visible within the TTL (the reference's search
attribute cache is eventually consistent too). Changes made through this node are visible at once.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping

from temporalio.api.common.v1 import SearchAttributes

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.query_process import QueryParserProcess
from hourglass.cluster.history.limits import LIMITS
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import attributes
from hourglass.persistence.visibility.attributes import ValueType
from hourglass.persistence.visibility.model import VisibilityQuery
from hourglass.persistence.visibility.query import QueryError
from hourglass.persistence.visibility.resolve import ArchetypeView, parse_query
from hourglass.persistence.visibility.values import InvalidValue, decode_payload, strict_value

# The number and sizes of search attributes a workflow may carry are the reference's dynamic config
# (frontend.searchAttributesNumberOfKeysLimit, ...SizeOfValueLimit, ...TotalSizeLimit): see limits.py.
MAX_NAME_LENGTH = 255
CACHE_TTL_S = 5.0
# Queries longer than this are parsed in a process of their own, one at a time (query_process.py): a 2 MB
# `IN (...)` list takes seconds of parsing, which on the event loop would stall every other request.
INLINE_QUERY_CHARS = 4096


class SearchAttributeRegistry:
    def __init__(self, store: Store, cache_ttl_s: float = CACHE_TTL_S) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}
        self._long_queries = QueryParserProcess()
        # A namespace's name from its id, for messages (the node sets its namespace registry's).
        self.namespace_name: Callable[[str], str | None] = lambda _id: None

    # ---- registrations -------------------------------------------------------------------------------------
    async def custom(self, namespace_id: str) -> dict[str, int]:
        """Custom attributes of the namespace: name -> IndexedValueType."""
        cached = self._cache.get(namespace_id)
        if cached is not None and time.monotonic() - cached[0] < self.cache_ttl_s:
            return cached[1]
        registered = await self.store.get_search_attributes(namespace_id)
        self._cache[namespace_id] = (time.monotonic(), registered)
        return registered

    async def add(self, namespace_id: str, new: Mapping[str, int]) -> None:
        """Register custom attributes. As on the reference, a name that is already registered is left as
        it is, whatever type the request gives it (the call still succeeds)."""
        if not new:
            raise InvalidArgument("SearchAttributes are not set on request.")
        for name, value_type in new.items():
            check_name(name)
            try:
                ValueType(value_type)
            except ValueError:
                raise InvalidArgument(f"Unknown search attribute type: {value_type}.") from None
        await self.store.add_search_attributes(namespace_id, {n: int(t) for n, t in new.items()})
        self._cache.pop(namespace_id, None)

    async def remove(self, namespace_id: str, names: Iterable[str]) -> None:
        """Unregister custom attributes; unknown names are ignored, system ones refused (as the reference)."""
        names = list(names)
        if not names:
            raise InvalidArgument("SearchAttributes are not set on request.")
        for name in names:
            if name in attributes.SYSTEM or name in attributes.PREDEFINED:
                raise InvalidArgument(f"Unable to remove non-custom search attributes: {name}.")
        await self.store.remove_search_attributes(namespace_id, names)
        self._cache.pop(namespace_id, None)

    # ---- queries -------------------------------------------------------------------------------------------
    async def parse_query(
        self, namespace_id: str, text: str, view: ArchetypeView | None = None
    ) -> VisibilityQuery:
        """A list/count query resolved against the namespace's attributes, over workflows or (`view`) a
        standalone archetype's hidden runs; INVALID_ARGUMENT if it is bad."""
        custom = await self.custom(namespace_id)
        try:
            if len(text) <= INLINE_QUERY_CHARS:
                return parse_query(text, custom, view)
            return await self._long_queries.parse(text, custom, view)
        except QueryError as e:
            raise InvalidArgument(f"invalid query: {e}") from None

    def close(self) -> None:
        """Stop the long queries' parser process, if one was started."""
        self._long_queries.close()

    # ---- values set by workflows ---------------------------------------------------------------------------
    async def validate_search_attributes(
        self, namespace_id: str, search_attributes: SearchAttributes | None
    ) -> None:
        """Check search attributes a workflow starts with or upserts; InvalidArgument names the first problem.
        Valid ones get their type in their metadata when it is missing (the message is changed in place).

        Each must be a registered custom attribute (or a predefined one workflows may set, such as
        TemporalChangeVersion) holding a value of its type; a null value or an empty list unsets it.
        """
        if search_attributes is None or not search_attributes.indexed_fields:
            return
        fields = search_attributes.indexed_fields
        max_keys = LIMITS.search_attributes_number_of_keys
        if len(fields) > max_keys:
            raise InvalidArgument(f"number of search attributes {len(fields)} exceeds limit {max_keys}")
        custom = await self.custom(namespace_id)
        for name in sorted(fields):
            if name not in custom and name not in attributes.SYSTEM and name not in attributes.PREDEFINED:
                namespace = self.namespace_name(namespace_id) or namespace_id
                raise InvalidArgument(
                    f"Namespace {namespace} has no mapping defined for search attribute {name}"
                )
            value_type = _settable_type(name, custom)
            payload = fields[name]
            try:
                raw = decode_payload(payload)
                strict_value(raw, value_type)
            except InvalidValue:
                raise InvalidArgument(
                    f"invalid value for search attribute {name} of type {value_type.display_name}: "
                    f"{_show_payload(payload.data)}"
                ) from None
            max_value = LIMITS.search_attributes_size_of_value
            if len(payload.data) > max_value:
                raise InvalidArgument(
                    f"search attribute {name} value size {len(payload.data)} exceeds size limit {max_value}"
                )
        total, max_total = search_attributes.ByteSize(), LIMITS.search_attributes_total_size
        if total > max_total:
            raise InvalidArgument(f"total size of search attributes {total} exceeds size limit {max_total}")
        # Each payload names its type, as the reference's frontend types them whatever the client sent:
        # the started / upserted event, describe and lists all carry it.
        for name, payload in fields.items():
            if "type" not in payload.metadata:
                payload.metadata["type"] = _settable_type(name, custom).display_name.encode()


def check_name(name: str) -> None:
    """A name a custom attribute may take: not reserved, and usable in a query (`backticks` allow spaces) and
    as a JSON path in the SQLite index (no double quote nor backslash)."""
    if not name or not name.strip():
        raise InvalidArgument("Search attribute name is empty.")
    if attributes.is_reserved(name):
        raise InvalidArgument(f"Search attribute {name} is reserved by system.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"Search attribute name {name[:40]}... is longer than {MAX_NAME_LENGTH} characters."
        )
    if any(ch in '`"\\' or unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidArgument(
            f"Search attribute name {name!r} contains a backtick, a double quote, a backslash or a control "
            "character."
        )


def _settable_type(name: str, custom: Mapping[str, int]) -> ValueType:
    if name in attributes.SYSTEM or (
        name in attributes.PREDEFINED and name not in attributes.SETTABLE_PREDEFINED
    ):
        raise InvalidArgument(f"{name} attribute can't be set in SearchAttributes")
    if name in attributes.SETTABLE_PREDEFINED:
        return attributes.SETTABLE_PREDEFINED[name]
    if name not in custom:
        raise InvalidArgument(f"search attribute {name} is not defined")
    return ValueType(custom[name])


def _show_payload(data: bytes) -> str:
    """The value as the user sent it (JSON text), shortened for a message."""
    try:
        value = json.loads(data)
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            value = float(value)  # the reference reads JSON numbers as float64 and shows them so
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, OverflowError):
        text = repr(data[:80])
    return text if len(text) <= 80 else text[:77] + "..."


def system_attribute_types() -> dict[str, int]:
    """What ListSearchAttributes reports as system attributes: system and predefined, as the reference."""
    return {name: int(t) for name, t in {**attributes.SYSTEM, **attributes.PREDEFINED}.items()}
