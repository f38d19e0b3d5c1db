# The one image: `euphrosyne serve` (the host) and `euphrosyne sandbox` (each recipe run's Job),
# for users with a registry:
#
#   docker build -t ghcr.io/euphrosyne/euphrosyne:0.1.0 .
#
# The layout is the one `scripts/build-image` makes without a registry or a container engine
# (CI builds that one and runs it on the Kubernetes suite's real node): the release binary,
# stripped of its debug line tables, at /usr/local/bin/euphrosyne, on distroless/cc (glibc,
# libgcc_s, CA certificates, uid 65532 `nonroot`), running as 65532.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p euphrosyne \
 && install -D -m 0755 target/release/euphrosyne /out/euphrosyne \
 && strip --strip-debug /out/euphrosyne

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/euphrosyne /usr/local/bin/euphrosyne
USER 65532:65532
ENTRYPOINT ["euphrosyne"]
CMD ["serve"]
