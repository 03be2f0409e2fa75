"""The Nexus endpoint registry behind OperatorService Create/Update/Delete/Get/ListNexusEndpoints.

Endpoints are cluster-wide and live in the store (nexus_endpoints), so every node answers the same list.
Each change reads the whole registry with its table version, checks the request against it (name taken,
endpoint version) and writes conditionally on that table version; a writer that lost the race reads again,
so two nodes cannot register one name twice. Validation, messages, ids, versions, times and paging are the
reference 1.32's (service/frontend/nexus_endpoint_client.go, service/matching/nexus_endpoint_client.go),
with two deliberate differences: renaming an endpoint to a name another endpoint holds is refused
(ALREADY_EXISTS) where the reference accepts it and ends up with two endpoints of one name, and a page token
the server did not make is INVALID_ARGUMENT where the reference answers INTERNAL.

The stored Endpoint names a worker target's namespace by id (as the reference stores it), answered by name.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.nexus.v1 import Endpoint, EndpointSpec

from hourglass.cluster.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NamespaceNotFound,
    NotFound,
    Unavailable,
)
from hourglass.cluster.frontend.namespaces import NamespaceRegistry
from hourglass.cluster.frontend.validation import MAX_ID_LENGTH
from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.records import NexusEndpointRecord
from hourglass.persistence.store import Store

# The reference's regex and dynamic-config defaults (NexusEndpointNameMaxLength, ...DescriptionMaxSize,
# ...ExternalURLMaxLength, ...ListDefaultPageSize, ...ListMaxPageSize).
NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9]$"
_NAME_RE = re.compile(NAME_PATTERN)
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_BYTES = 20000
MAX_EXTERNAL_URL_LENGTH = 4096
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
RESERVED_TASK_QUEUE_PREFIX = "/_sys/"
# A change that keeps losing the table-version race (others keep changing the registry) gives up: UNAVAILABLE,
# which clients retry.
_MAX_ATTEMPTS = 10


def url_prefix(endpoint_id: str) -> str:
    """Where the reference's HTTP API dispatches a Nexus request to this endpoint."""
    return f"/nexus/endpoints/{endpoint_id}/services"


class NexusEndpointRegistry:
    def __init__(
        self, store: Store, namespaces: NamespaceRegistry, now_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.store = store
        self.namespaces = namespaces
        self._now_ns = now_ns

    # ---- writes ------------------------------------------------------------------------------------------
    async def create(self, spec: EndpointSpec) -> Endpoint:
        stored_spec = await self._validated(spec)
        for _ in range(_MAX_ATTEMPTS):
            table_version, records = await self.store.list_nexus_endpoints()
            if any(_stored(r).spec.name == spec.name for r in records):
                raise AlreadyExists(
                    f"error creating Nexus endpoint. Endpoint with name {spec.name} already registered"
                )
            created = Timestamp()
            created.FromNanoseconds(self._now_ns())
            endpoint = Endpoint(version=1, id=str(uuid.uuid4()), spec=stored_spec, created_time=created)
            try:
                await self.store.write_nexus_endpoint(
                    NexusEndpointRecord(endpoint.id, 1, endpoint.SerializeToString()), table_version
                )
            except ConditionFailedError:
                continue  # someone changed the registry since we read it: check again
            return await self._answer(endpoint)
        raise Unavailable("error creating Nexus endpoint: the registry kept changing, try again")

    async def update(self, endpoint_id: str, version: int, spec: EndpointSpec) -> Endpoint:
        stored_spec = await self._validated(spec)
        for _ in range(_MAX_ATTEMPTS):
            table_version, records = await self.store.list_nexus_endpoints()
            previous = next((r for r in records if r.id == endpoint_id), None)
            if previous is None:
                raise NotFound(f"error updating Nexus endpoint. endpoint ID {endpoint_id} not found")
            if version != previous.version:
                raise FailedPrecondition(
                    f"nexus endpoint version mismatch. received: {version} expected {previous.version}"
                )
            if any(r.id != endpoint_id and _stored(r).spec.name == spec.name for r in records):
                raise AlreadyExists(
                    f"error updating Nexus endpoint. Endpoint with name {spec.name} already registered"
                )
            # As the reference: an updated endpoint carries its modification time (milliseconds, its hybrid
            # logical clock's precision) and no longer its creation time.
            modified = Timestamp()
            modified.FromMilliseconds(self._now_ns() // 1_000_000)
            endpoint = Endpoint(
                version=previous.version + 1, id=endpoint_id, spec=stored_spec, last_modified_time=modified
            )
            try:
                await self.store.write_nexus_endpoint(
                    NexusEndpointRecord(endpoint_id, endpoint.version, endpoint.SerializeToString()),
                    table_version,
                )
            except ConditionFailedError:
                continue
            return await self._answer(endpoint)
        raise Unavailable("error updating Nexus endpoint: the registry kept changing, try again")

    async def delete(self, endpoint_id: str, version: int) -> None:
        issues = _endpoint_id_issues(endpoint_id)
        if version <= 0:
            issues.append("endpoint version is non-positive")
        _raise_issues(issues)
        # The reference checks only that a version is given, not that it is the current one.
        for _ in range(_MAX_ATTEMPTS):
            table_version, records = await self.store.list_nexus_endpoints()
            if not any(r.id == endpoint_id for r in records):
                raise NotFound(f"error deleting nexus endpoint with ID: {endpoint_id}")
            try:
                await self.store.delete_nexus_endpoint(endpoint_id, table_version)
            except ConditionFailedError:
                continue
            return
        raise Unavailable("error deleting Nexus endpoint: the registry kept changing, try again")

    # ---- reads -------------------------------------------------------------------------------------------
    async def get(self, endpoint_id: str) -> Endpoint:
        _raise_issues(_endpoint_id_issues(endpoint_id))
        _, records = await self.store.list_nexus_endpoints()
        for record in records:
            if record.id == endpoint_id:
                return await self._answer(_stored(record))
        raise NotFound(f"Nexus endpoint with ID `{endpoint_id}` not found")

    async def by_name(self, name: str) -> Endpoint | None:
        """The endpoint registered under `name` (what a workflow's ScheduleNexusOperation names), or None."""
        _, records = await self.store.list_nexus_endpoints()
        for record in records:
            endpoint = _stored(record)
            if endpoint.spec.name == name:
                return await self._answer(endpoint)
        return None

    async def list(self, page_size: int, next_page_token: bytes, name: str) -> tuple[list[Endpoint], bytes]:
        """One page, ordered by id; with `name`, the endpoint of that name or none (paging is ignored)."""
        if name:
            found = await self.by_name(name)
            return ([found] if found is not None else []), b""
        _, records = await self.store.list_nexus_endpoints()
        if page_size == 0:
            page_size = DEFAULT_PAGE_SIZE
        elif page_size < 0:
            raise InvalidArgument("page_size is negative")
        elif page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size exceeds limit of {MAX_PAGE_SIZE}")
        if next_page_token:
            last_id = _decode_token(next_page_token)
            records = [r for r in records if r.id > last_id]
        page = records[:page_size]
        # As the reference's SQL store: a full page has a next page token, even when nothing follows.
        token = _encode_token(page[-1].id) if len(page) == page_size else b""
        return [await self._answer(_stored(r)) for r in page], token

    # ---- the stored form ---------------------------------------------------------------------------------
    async def _validated(self, spec: EndpointSpec) -> EndpointSpec:
        """The spec as stored (a worker target's namespace by id), or the reference's error for it."""
        issues = _name_issues(spec.name)
        variant = spec.target.WhichOneof("variant") if spec.HasField("target") else None
        if variant is None:
            issues.append("empty target variant")
            _raise_issues(issues)
        stored = EndpointSpec()
        stored.CopyFrom(spec)
        if variant == "worker":
            worker = spec.target.worker
            if not worker.namespace:
                issues.append("target namespace not set")
            else:
                try:
                    ns = await self.namespaces.get(worker.namespace)
                except NamespaceNotFound as e:
                    raise FailedPrecondition(
                        f"could not verify namespace referenced by target exists: {e.message}"
                    ) from None
                stored.target.worker.namespace = ns.id
            problem = _task_queue_problem(worker.task_queue)
            if problem:
                issues.append(f'invalid target task queue: "{problem}"')
        else:
            issues.extend(_url_issues(spec.target.external.url))
        if spec.description.ByteSize() > MAX_DESCRIPTION_BYTES:
            issues.append(f"description size exceeds limit of {MAX_DESCRIPTION_BYTES}")
        _raise_issues(issues)
        return stored

    async def _answer(self, stored: Endpoint) -> Endpoint:
        """The endpoint as the API answers it: the worker target's namespace by name, the URL prefix."""
        answer = Endpoint()
        answer.CopyFrom(stored)
        if answer.spec.target.WhichOneof("variant") == "worker":
            ns = await self.namespaces.get_by_id(stored.spec.target.worker.namespace)
            answer.spec.target.worker.namespace = ns.name
        answer.url_prefix = url_prefix(stored.id)
        return answer


def _stored(record: NexusEndpointRecord) -> Endpoint:
    endpoint = Endpoint()
    endpoint.ParseFromString(record.data)
    return endpoint


def _raise_issues(issues: list[str]) -> None:
    if issues:
        raise InvalidArgument(", ".join(issues))


def _name_issues(name: str) -> list[str]:
    if not name:
        return ["endpoint name not set"]
    issues = []
    if len(name.encode()) > MAX_NAME_LENGTH:
        issues.append(f"endpoint name exceeds length limit of {MAX_NAME_LENGTH}")
    if not _NAME_RE.match(name):
        issues.append(f"endpoint name must match the regex: {json.dumps(NAME_PATTERN)}")
    return issues


def _task_queue_problem(name: str) -> str:
    if not name:
        return "taskQueue is not set"
    if len(name.encode()) > MAX_ID_LENGTH:
        return "taskQueue length exceeds limit"
    if name.startswith(RESERVED_TASK_QUEUE_PREFIX):
        return f"task queue name cannot start with reserved prefix {RESERVED_TASK_QUEUE_PREFIX}"
    return ""


def _url_issues(url: str) -> list[str]:
    if not url:
        return ["empty target URL"]
    if len(url.encode()) > MAX_EXTERNAL_URL_LENGTH:
        return [f"target URL length exceeds limit of {MAX_EXTERNAL_URL_LENGTH}"]
    try:
        scheme = urlsplit(url).scheme
    except ValueError as e:
        # Go's url.Parse names the one malformation Python's parser reports as "Invalid IPv6 URL" alike.
        reason = "missing ']' in host" if "IPv6" in str(e) else str(e)
        return [f'invalid target URL: parse "{url}": {reason}']
    if scheme not in ("http", "https"):
        return [f'invalid target URL scheme: "{scheme}", expected http or https']
    return []


def _endpoint_id_issues(endpoint_id: str) -> list[str]:
    if not endpoint_id:
        return ["endpoint ID not set"]
    problem = _uuid_problem(endpoint_id)
    return [f'malformed endpoint ID: "{problem}"'] if problem else []


def _uuid_problem(text: str) -> str:
    """Go's uuid.Parse verdict (the reference's message): the forms it accepts are 36, 38 ({...}), 45
    (urn:uuid:...) and 32 (no dashes) characters long."""
    if len(text) not in (32, 36, 38, 45):
        return f"invalid UUID length: {len(text)}"
    try:
        uuid.UUID(text)
    except ValueError:
        return "invalid UUID format"
    return ""


def _encode_token(last_id: str) -> bytes:
    """The reference's page token: JSON naming the last endpoint's id as the UUID's 16 bytes."""
    return json.dumps(
        {"LastID": base64.b64encode(uuid.UUID(last_id).bytes).decode()}, separators=(",", ":")
    ).encode()


def _decode_token(token: bytes) -> str:
    try:
        last = json.loads(token)["LastID"]
        return str(uuid.UUID(bytes=base64.b64decode(last, validate=True)))
    except (ValueError, KeyError, TypeError, binascii.Error):
        # A deliberate difference: the reference answers INTERNAL "error listing Nexus endpoints" (its store
        # fails to decode the token); a token the client made up is the client's error.
        raise InvalidArgument("invalid next page token for Nexus endpoints") from None
