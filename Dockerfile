# An Hourglass node. Build: docker build -t hourglass:dev .   Run with Cassandra, Prometheus and Grafana:
# docker compose -f deploy/compose.yaml up (see README "Containers").
# The image runs `hourglass server start --config /etc/hourglass/hourglass.yaml` as an unprivileged user;
# mount the config there (and any certificate or secret files it names).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cluster cluster
COPY persistence persistence
COPY schema schema
COPY loadtest loadtest
COPY sdk sdk
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# No compiler or build files in the final image: only the wheels of Hourglass and its dependencies.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/hourglass --create-home hourglass
USER hourglass
WORKDIR /var/lib/hourglass
# 7233 frontend gRPC, 7243 the HTTP API, 7234 internal RPC and 7946/udp gossip (cluster members),
# 9464 Prometheus /metrics.
EXPOSE 7233 7243 7234 7946/udp 9464
# The standard gRPC health check of the frontend (no token needed, as on the reference). A node whose
# frontend serves TLS needs --tls-ca-path (and a client certificate under mutual TLS) here.
HEALTHCHECK --interval=10s --timeout=6s --start-period=60s --retries=3 \
    CMD ["hourglass", "server", "health", "--address", "127.0.0.1:7233", "--timeout", "5"]
ENTRYPOINT ["hourglass"]
CMD ["server", "start", "--config", "/etc/hourglass/hourglass.yaml"]
