# multiprovider: build with the Rust toolchain, run on a slim Debian as a non-root user.
FROM rust:1-bookworm AS builder
WORKDIR /src
# Manifest and sources only (see .dockerignore); benches/ because Cargo.toml declares one.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin multiprovider

FROM debian:bookworm-slim
# curl only for the HEALTHCHECK; ca-certificates for TLS to a managed PostgreSQL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/multiprovider multiprovider
COPY --from=builder /src/target/release/multiprovider /usr/local/bin/multiprovider
USER multiprovider
WORKDIR /var/lib/multiprovider
# The embedded SQLite default lives in the volume; set DATABASE_URL=postgres://… for PostgreSQL.
ENV MULTIPROVIDER_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/multiprovider/multiprovider.db
VOLUME ["/var/lib/multiprovider"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/ready || exit 1
# SIGTERM (docker stop) lets in-flight requests finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["multiprovider"]
CMD ["serve"]
