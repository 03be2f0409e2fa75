"""The node's HTTP port: /metrics and the cluster page."""
