"""Cluster membership: SWIM-style gossip over UDP (who is in the cluster, alive, suspect or dead)."""
