"""The Cassandra / Astra DB store (cassandra-driver, LWT conditional batches). See store.py."""
