# syntax=docker/dockerfile:1
# Switchboard container image: built with the workspace's locked dependencies, run as a
# non-root user on Debian slim. deploy/compose.yaml runs it with PostgreSQL, Prometheus and
# Grafana; deploy/README.md explains ports and volumes.
#
#   docker build -t switchboard .
#   docker run --rm switchboard check-config /etc/switchboard/switchboard.toml

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin switchboard \
 && cp target/release/switchboard /usr/local/bin/switchboard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /var/lib/switchboard \
        --shell /usr/sbin/nologin switchboard \
 && install -d -o switchboard -g switchboard -m 0750 /var/lib/switchboard
COPY --from=build /usr/local/bin/switchboard /usr/local/bin/switchboard
COPY sounds/ /usr/local/share/switchboard/sounds/
COPY deploy/compose/switchboard.toml /etc/switchboard/switchboard.toml
# The SQLite file (when used), the spool and recordings: keep this directory on a volume.
ENV STATE_DIRECTORY=/var/lib/switchboard
VOLUME ["/var/lib/switchboard"]
WORKDIR /var/lib/switchboard
USER switchboard:switchboard
# SIP (UDP and TCP) and HTTP (/healthz, /readyz, /metrics, /api/v1, pages).
EXPOSE 5060/udp 5060/tcp 8080/tcp
# RTP: the [media] rtp_ports range of the configuration (20000-20199 in the image's file;
# each call takes two even ports and their RTCP pairs). Publish the same range.
EXPOSE 20000-20199/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["run", "--config", "/etc/switchboard/switchboard.toml"]
