"""Who may talk to a node: TLS material for every gRPC port, the authorizer and claim mapper of the
public API, and the secrets a cluster shares (task-token key, gossip keyring)."""
