# Provost's container image: built from this checkout, run as a non-root user.
#   docker build -t provost .
#   docker run --rm -p 8080:8080 -v provost-data:/var/lib/provost provost
# (not exercised on our machines, which reach no container registry; see docs/src/operations.md)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin provost

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/provost --shell /usr/sbin/nologin provost \
    && mkdir -p /var/lib/provost /etc/provost \
    && chown provost:provost /var/lib/provost
COPY --from=build /src/target/release/provost /usr/local/bin/provost
USER 10001:10001
WORKDIR /var/lib/provost
# The database (SQLite by default) and the key that seals stored tokens live in the volume.
VOLUME ["/var/lib/provost"]
ENV PROVOST_SERVER__LISTEN=0.0.0.0:8080 \
    PROVOST_DATABASE__URL=sqlite:///var/lib/provost/provost.db \
    PROVOST_SECRETS__KEY_FILE=/var/lib/provost/provost.key
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1"]
ENTRYPOINT ["provost"]
CMD ["serve"]
