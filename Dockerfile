# token-broker's container image. Two stages on debian:bookworm-slim: `build` compiles with
# Debian's -dev packages; `runtime` holds the two programs, the shared libraries they need, CA
# certificates and an example configuration, and runs as an unprivileged user.
#
#   docker build -t token-broker .      (podman, offline: scripts/dev image)
#
# The image also carries zoom-sim, the Zoom simulator, for the local stack in docker/compose.yaml.

FROM debian:bookworm-slim AS build
# The build packages of scripts/dev (BUILD_PACKAGES), without the test frameworks.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        cmake ninja-build g++ pkg-config ca-certificates \
        libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-program-options1.81-dev \
        libssl-dev libspdlog-dev prometheus-cpp-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the programs are built from, so that edits elsewhere keep the compiled layer cached.
COPY CMakeLists.txt CMakePresets.json ./
COPY lib lib
COPY sim sim
COPY service service
RUN cmake --preset image \
 && cmake --build --preset image \
 && strip build/image/service/token-broker build/image/sim/zoom-sim

FROM debian:bookworm-slim AS runtime
# The shared libraries the programs link (ldd, then dpkg -S in the build stage), besides libc and
# libstdc++ which the base has; the CA bundle for Zoom's certificates.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libssl3 libboost-json1.81.0 libboost-url1.81.0 libboost-program-options1.81.0 \
        libspdlog1.10 libfmt9 libprometheus-cpp-core1.0 libhiredis0.14 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 token-broker \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin token-broker \
 && install -d -o 10001 -g 10001 -m 0755 /var/lib/zoom-sim
COPY --from=build /src/build/image/service/token-broker /src/build/image/sim/zoom-sim /usr/local/bin/
# Fails the build, rather than the container, when a library is missing from the list above.
RUN ! ldd /usr/local/bin/token-broker /usr/local/bin/zoom-sim | grep 'not found'
COPY config/token-broker.json /etc/token-broker/token-broker.json

USER 10001:10001
# Inside a container the broker must listen on every interface; the configuration therefore needs
# caller keys (auth.keys or auth.keys_file) or it is refused at start.
ENV TOKEN_BROKER_ADDRESS=0.0.0.0
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["token-broker", "--probe", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["token-broker"]
CMD ["--config", "/etc/token-broker/token-broker.json"]
