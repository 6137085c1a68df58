# multiprovider: build with the Rust toolchain, run on a slim Debian as a non-root user.
FROM rust:1-bookworm AS builder
WORKDIR /src

# 1. The dependency graph alone, in a layer of its own: it is rebuilt only when Cargo.toml or
#    Cargo.lock change, not on every source change. Every target Cargo.toml declares gets a
#    stand-in (tests/it/deploy_files.rs checks the list), then the stand-ins are removed.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/resolve.rs \
    && cargo build --release --locked --bin multiprovider \
    && rm -rf src benches target/release/multiprovider* target/release/deps/multiprovider-* \
        target/release/deps/libmultiprovider-* target/release/.fingerprint/multiprovider-*

# 2. multiprovider itself (the migrations are compiled into the binary).
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin multiprovider

FROM debian:bookworm-slim
# curl only for the HEALTHCHECK. No ca-certificates: PostgreSQL's TLS roots are built in.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
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
# Follows MULTIPROVIDER_LISTEN (an address of all interfaces is probed on the loopback) and
# speaks HTTPS when MULTIPROVIDER_TLS_CERT is set (-k: the certificate is for clients' names).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD addr="${MULTIPROVIDER_LISTEN:-127.0.0.1:8080}"; host="${addr%:*}"; port="${addr##*:}"; \
        case "$host" in 0.0.0.0|"[::]"|"") host=127.0.0.1 ;; esac; \
        scheme=http; [ -z "${MULTIPROVIDER_TLS_CERT:-}" ] || scheme=https; \
        curl -fsSkg --max-time 2 "$scheme://$host:$port/health/ready" >/dev/null || exit 1
# SIGTERM (docker stop) lets in-flight requests finish; SIGHUP re-reads the TLS certificate.
STOPSIGNAL SIGTERM
ENTRYPOINT ["multiprovider"]
CMD ["serve"]
