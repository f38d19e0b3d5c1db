# The one image: `euphrosyne serve` (the host) and `euphrosyne sandbox` (each recipe run's Job).
# Multi-stage: a static (musl) release binary on distroless/static, non-root (uid 65532).
#
#   docker build -t ghcr.io/euphrosyne/euphrosyne:0.1.0 .
#
# (Not built in CI: no container engine runs on the CI machine. The Kubernetes suite runs the
# same binary as this image would, as a local process, through the test node agent.)
FROM docker.io/library/rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p euphrosyne --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/euphrosyne /out/euphrosyne

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/euphrosyne /usr/local/bin/euphrosyne
USER 65532:65532
ENTRYPOINT ["euphrosyne"]
CMD ["serve"]
