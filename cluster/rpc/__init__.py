"""Internal node-to-node gRPC: the envelope codec, the client and the servicers (proto/hourglass/internal)."""
