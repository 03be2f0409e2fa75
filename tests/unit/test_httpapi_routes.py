"""The HTTP API's routes come from the API's `google.api.http` annotations: every binding is served by
its own method, path variables fill request fields, and a path no route has is told apart from a route
asked with the wrong HTTP method (404 and 501 on the reference)."""

from __future__ import annotations

import pytest

from hourglass.cluster.httpapi.routes import RouteNotFound, match, routes


def test_every_annotated_binding_is_routed_to_its_own_method() -> None:
    table = routes()
    assert len(table) > 200  # WorkflowService and OperatorService, /api/v1/... and the older paths
    for route in table:
        path = "/" + "/".join(s if s is not None else "x" for s in route.segments)
        assert match(route.http_method, path).route.method.full_name == route.method.full_name, path


@pytest.mark.parametrize(
    ("method", "path", "rpc", "values"),
    [
        ("POST", "/api/v1/namespaces/default/workflows/w1", "StartWorkflowExecution",
         {"namespace": "default", "workflow_id": "w1"}),
        ("GET", "/api/v1/namespaces/default/workflows/w1", "DescribeWorkflowExecution",
         {"namespace": "default", "execution.workflow_id": "w1"}),
        ("GET", "/api/v1/namespaces/default/workflows", "ListWorkflowExecutions", {"namespace": "default"}),
        ("POST", "/api/v1/namespaces/ns/workflows/a%2Fb/update/add", "UpdateWorkflowExecution",
         {"namespace": "ns", "workflow_execution.workflow_id": "a/b", "request.input.name": "add"}),
        ("POST", "/namespaces/ns/workflows/w/query/q", "QueryWorkflow",
         {"namespace": "ns", "execution.workflow_id": "w", "query.query_type": "q"}),
        ("GET", "/cluster/namespaces/ns", "DescribeNamespace", {"namespace": "ns"}),
    ],
)  # fmt: skip
def test_paths_fill_request_fields(method: str, path: str, rpc: str, values: dict[str, str]) -> None:
    found = match(method, path)
    assert found.route.method.name == rpc
    assert found.path_values == values
    assert found.route.request_class().DESCRIPTOR is found.route.method.input_type


def test_unknown_paths_and_wrong_methods() -> None:
    with pytest.raises(RouteNotFound) as unknown:
        match("GET", "/api/v1/no/such/thing")
    assert not unknown.value.method_mismatch and str(unknown.value) == "Not Found"
    with pytest.raises(RouteNotFound) as wrong:
        match("DELETE", "/api/v1/namespaces/default/workflows/w1")
    assert wrong.value.method_mismatch and str(wrong.value) == "Method Not Allowed"
    with pytest.raises(RouteNotFound):  # an empty variable matches nothing
        match("GET", "/api/v1/namespaces//workflows")
