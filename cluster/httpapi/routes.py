"""The HTTP API's routes, read from the `google.api.http` annotations of the WorkflowService and
OperatorService descriptors the SDK ships (the same annotations the reference's grpc-gateway is generated
from), so a route exists exactly when the API defines it.

A template such as `/api/v1/namespaces/{namespace}/workflows/{execution.workflow_id}/history` matches one
path segment per variable; the variables are request fields (dotted for nested ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote

from google.api import annotations_pb2
from google.protobuf import symbol_database
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

SERVICES: tuple[ServiceDescriptor, ...] = (
    workflow_service.DESCRIPTOR.services_by_name["WorkflowService"],
    operator_service.DESCRIPTOR.services_by_name["OperatorService"],
)
_VARIABLE = re.compile(r"^\{([A-Za-z0-9_.]+)\}$")


@dataclass(frozen=True)
class Route:
    http_method: str  # GET, POST, DELETE...
    segments: tuple[str | None, ...]  # a literal segment, or None for a variable
    variables: tuple[tuple[int, str], ...]  # (segment index, request field path)
    body: str  # "*": the whole request is the body; "": no body (query parameters instead)
    method: MethodDescriptor

    @property
    def grpc_method(self) -> str:
        """`/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution`."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    def request_class(self) -> type[Message]:
        return symbol_database.Default().GetSymbol(self.method.input_type.full_name)

    def response_class(self) -> type[Message]:
        return symbol_database.Default().GetSymbol(self.method.output_type.full_name)

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if s is not None)


@dataclass(frozen=True)
class Match:
    route: Route
    path_values: dict[str, str]  # request field path -> the segment's decoded text


def _bindings(rule) -> list:
    return [rule, *rule.additional_bindings]


def _route(http_method: str, template: str, body: str, method: MethodDescriptor) -> Route:
    segments: list[str | None] = []
    variables = []
    for i, part in enumerate(template.strip("/").split("/")):
        variable = _VARIABLE.match(part)
        if variable:
            segments.append(None)
            variables.append((i, variable[1]))
        else:
            segments.append(part)
    return Route(http_method, tuple(segments), tuple(variables), body, method)


@cache
def routes() -> tuple[Route, ...]:
    """Every route, those with more literal segments first (a literal wins over a variable)."""
    found = []
    for service in SERVICES:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            for binding in _bindings(options.Extensions[annotations_pb2.http]):
                kind = binding.WhichOneof("pattern")
                if kind in ("get", "put", "post", "delete", "patch"):
                    found.append(_route(kind.upper(), getattr(binding, kind), binding.body, method))
    return tuple(sorted(found, key=lambda r: -r.literal_count))


class RouteNotFound(Exception):
    """No route has this path (404), or one has it but not for this HTTP method (`method_mismatch`)."""

    def __init__(self, method_mismatch: bool) -> None:
        super().__init__("Method Not Allowed" if method_mismatch else "Not Found")
        self.method_mismatch = method_mismatch


def match(http_method: str, path: str, any_method: bool = False) -> Match:
    """The route for a request; raises RouteNotFound. `path` is the raw (still percent-encoded) path.
    `any_method`: a route of another HTTP method will do (grpc-gateway's fallback for a POSTed form)."""
    parts = path.strip("/").split("/")
    path_matched = False
    fallback: Match | None = None
    for route in routes():
        if len(route.segments) != len(parts):
            continue
        if any(lit is not None and lit != part for lit, part in zip(route.segments, parts, strict=True)):
            continue
        if any(not parts[i] for i, _ in route.variables):
            continue
        found = Match(route, {field: unquote(parts[i]) for i, field in route.variables})
        if route.http_method != http_method:
            path_matched = True
            fallback = fallback or found
            continue
        return found
    if any_method and fallback is not None:
        return fallback
    raise RouteNotFound(path_matched)
