"""`hourglass loadtest`: drive a Temporal-compatible server with a scenario and measure what it sustains.

Modules, one job each: `catalog` (scenario names, import-light for the CLI), `scenarios` (workflows,
activities and the raw command logic), `commands` (raw protobuf builders), `workers` (worker OS
processes), `driver_sdk` / `driver_raw` (the two ways of answering tasks and starting workflows),
`load` (closed- and open-loop load generation), `metrics` (Prometheus scraping), `history` (transitions
estimated from sampled histories), `stats` (figures), `runner` (one measured run), `servers` and
`compare` (side by side with the reference), `summary` (terminal output), `report` (JSON, PNG, HTML),
`cli` (the click group), `bench` (`make bench`).
"""
