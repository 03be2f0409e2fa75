"""Writes deploy/grafana/hourglass.json, the Grafana dashboard of a node's metrics, from the panel list
below: the queries live in one readable place, and tests/ops checks both that the committed JSON is what
this script writes and that every query returns data on a real Prometheus scraping a node.

    python tools/grafana/dashboard.py            # rewrite deploy/grafana/hourglass.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hourglass.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SEL = '{instance=~"$instance"}'  # every series of the chosen nodes
RI = "[$__rate_interval]"


def _sel(extra: str = "") -> str:
    return '{instance=~"$instance"' + (", " + extra if extra else "") + "}"


def _quantiles(metric: str, by: str, extra: str = "") -> list[tuple[str, str]]:
    legend = "{{" + by.split(", ")[0] + "}} " if by else ""
    group = f"{by}, le" if by else "le"
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{_sel(extra)}{RI})))",
            f"{legend}p{int(q * 100)}",
        )
        for q in (0.5, 0.99)
    ]


# (row title, [(panel title, unit, description, [(expr, legend)])])
ROWS: list[tuple[str, list[tuple[str, str, str, list[tuple[str, str]]]]]] = [
    (
        "Requests (public gRPC port)",
        [
            (
                "Requests/s by method",
                "reqps",
                "Unary requests of the public port, refused ones included.",
                [(f"sum by (method) (rate(hourglass_rpc_requests_total{SEL}{RI}))", "{{method}}")],
            ),
            (
                "Latency p50 / p99 by method (long polls excluded)",
                "s",
                "Poll* calls wait up to a minute for a task by design and are left out; GetWorkflowExecutionHistory "
                "includes the waits of clients long-polling for a workflow's result.",
                _quantiles("hourglass_rpc_latency_seconds", "method", 'method!~"Poll.*"'),
            ),
            (
                "Errors/s by method and status",
                "reqps",
                "Requests answered with a gRPC status other than OK. NOT_FOUND and ALREADY_EXISTS are often "
                "a client's normal flow; UNAVAILABLE and INTERNAL are the server's.",
                [
                    (
                        "sum by (method, status) (rate(hourglass_rpc_requests_total"
                        + _sel('status!="OK"')
                        + RI
                        + "))",
                        "{{method}} {{status}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Workflows",
        [
            (
                "Transitions/s and conditional batches/s",
                "ops",
                "A transition is one committed change of a workflow's state; a conditional batch is one store "
                "commit (an LWT batch on Cassandra), carrying one or more transitions.",
                [
                    (f"sum(rate(hourglass_transitions_total{SEL}{RI}))", "transitions/s"),
                    (
                        f"sum(rate(hourglass_persistence_conditional_batches_total{SEL}{RI}))",
                        "conditional batches/s",
                    ),
                    (f"sum(rate(hourglass_workflows_started_total{SEL}{RI}))", "runs started/s"),
                ],
            ),
            (
                "Transitions per conditional batch",
                "none",
                "How many transitions one store commit carries on average (1 when nothing is batched).",
                [
                    (
                        f"sum(rate(hourglass_transitions_total{SEL}{RI})) / "
                        f"sum(rate(hourglass_persistence_conditional_batches_total{SEL}{RI}))",
                        "transitions per batch",
                    )
                ],
            ),
        ],
    ),
    (
        "Store",
        [
            (
                "History append latency p50 / p99",
                "s",
                "One history node append per transition that adds events, before its batch.",
                _quantiles("hourglass_persistence_history_append_seconds", ""),
            ),
            (
                "Conditional batch latency p50 / p99",
                "s",
                "One per commit of transitions (an LWT on Cassandra).",
                _quantiles("hourglass_persistence_conditional_batch_seconds", ""),
            ),
            (
                "Store errors/s and availability",
                "short",
                "unavailable: the database could not be reached or timed out (the RPCs that needed it answered "
                "UNAVAILABLE). available is 0 on a node whose last store call could not reach it.",
                [
                    (f"sum by (error) (rate(hourglass_persistence_errors_total{SEL}{RI}))", "{{error}}/s"),
                    (f"min by (instance) (hourglass_persistence_available{SEL})", "available {{instance}}"),
                ],
            ),
        ],
    ),
    (
        "Shards",
        [
            (
                "Shards owned per node",
                "short",
                "Each history shard must be owned by exactly one node: the total must equal the configured "
                "count (alert HourglassShardUnowned).",
                [
                    (f"sum by (instance) (hourglass_shards_owned{SEL})", "{{instance}}"),
                    (f"sum(hourglass_shards_owned{SEL})", "total owned"),
                    (f"max(hourglass_history_shards{SEL})", "configured"),
                ],
            ),
            (
                "Shard movements",
                "short",
                "Shards acquired and released per node: bursts at deploys and failures, otherwise flat.",
                [
                    (
                        f"sum by (instance, direction) (increase(hourglass_shard_movements_total{SEL}{RI}))",
                        "{{instance}} {{direction}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Task queues",
        [
            (
                "Backlog (tasks waiting)",
                "short",
                "Tasks persisted in a partition and not yet handed to a worker: a growing backlog means too "
                "few workers (or none) poll the queue.",
                [
                    (
                        f"sum by (namespace, task_queue, task_type) (hourglass_task_queue_backlog{SEL})",
                        "{{namespace}}/{{task_queue}} {{task_type}}",
                    )
                ],
            ),
            (
                "Backlog age (oldest task)",
                "s",
                "How long the oldest waiting task has waited (alert HourglassTaskQueueBacklogAge).",
                [
                    (
                        f"max by (namespace, task_queue, task_type) (hourglass_task_queue_backlog_age_seconds{SEL})",
                        "{{namespace}}/{{task_queue}} {{task_type}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Node",
        [
            (
                "Event-loop lag p50 / p99",
                "s",
                "How late the node's event loop ran a 50 ms wake-up: the stall every request of the node saw "
                "(alert HourglassEventLoopLag).",
                _quantiles("hourglass_event_loop_lag_seconds", "instance"),
            ),
        ],
    ),
]


def _panel(panel_id: int, title: str, unit: str, description: str, targets, x: int, y: int, w: int) -> dict:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}},
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"datasource": DATASOURCE, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (importable with its DS_PROMETHEUS input, or provisioned)."""
    panels: list[dict] = []
    panel_id, y = 1, 0
    for title, row in ROWS:
        panels.append(
            {"id": panel_id, "type": "row", "title": title, "collapsed": False, "panels": [],
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        )  # fmt: skip
        panel_id, y = panel_id + 1, y + 1
        width = 24 // len(row)
        for i, spec in enumerate(row):
            panels.append(_panel(panel_id, *spec, x=i * width, y=y, w=width))
            panel_id += 1
        y += 8
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the Hourglass nodes (job hourglass).",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        ],
        "uid": "hourglass-node",
        "title": "Hourglass",
        "description": "Requests, workflow transitions, store latency, shards, task-queue backlogs and event-loop "
        "lag of Hourglass nodes.",
        "tags": ["hourglass", "temporal"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    # Also a variable, so a provisioned copy (where __inputs are not substituted) works.
                    "name": "DS_PROMETHEUS",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "instance",
                    "label": "Node",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(hourglass_transitions_total, instance)",
                        "refId": "instance",
                    },
                    "definition": "label_values(hourglass_transitions_total, instance)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                    "hide": 0,
                    "regex": "",
                    "options": [],
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
