# syntax=docker/dockerfile:1
#
# One image for every command of deno.json: the image's entry point is `deno task`, so the first
# argument names the command and the rest are its flags.
#
#   docker build -t orders-stream:0.1.0 .
#   docker run --rm orders-stream:0.1.0 pipeline --max-orders 10     # the all-in-one demo (default)
#   docker run --rm -e KAFKA_BROKERS=... orders-stream:0.1.0 orders --rate 50
#   docker run --rm -e KAFKA_BROKERS=... orders-stream:0.1.0 payments
#
# At the repository root because the build context is the repository (deno.json, deno.lock and
# the sources), and `docker build .` then finds this file and .dockerignore without flags.
# Checked by tests/infra/dockerfile_test.ts (BuildKit's own parser, via infra/tools/dockerfile_check).

ARG DENO_VERSION=2.9.6

# ---- build: resolves and caches every dependency; nothing of this stage but its results ships.
FROM denoland/deno:debian-${DENO_VERSION} AS build
ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1
WORKDIR /app

# The npm dependencies from the lock file alone: this layer is rebuilt only when deno.json or
# deno.lock change. --frozen fails the build instead of updating a stale lock.
COPY deno.json deno.lock ./
RUN deno install --frozen

# The sources (.dockerignore keeps tests, tools and local state out), then the module graph of
# every runtime module, downloaded and cached. Every module is an entrypoint because
# `deno install --entrypoint` does not follow `new Worker(new URL(...))`: the worker modules
# must be listed too, and listing all of them keeps new commands and workers covered.
COPY . .
RUN deno install --frozen --entrypoint $(find . -name '*.ts' -not -path './node_modules/*' | sort)

# ---- runtime: the same Deno, the application and its caches; no package manager step, no
# compilers, and not root.
FROM denoland/deno:debian-${DENO_VERSION} AS runtime
ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1 \
    HEALTH_PORT=9000
WORKDIR /app
# The deno user (uid 1993) comes with the base image. It owns the caches, which Deno updates at
# run time (compiled-code cache), and .local, the only folder the commands may write.
COPY --from=build --chown=deno:deno /deno-dir /deno-dir
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /app/.local && chown deno:deno /app/.local
USER deno

# HEALTH_PORT serves /livez, /readyz and /metrics. The image has no curl or wget: Deno asks.
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('HEALTH_PORT')}/livez`).catch(() => null); Deno.exit(r?.ok ? 0 : 1);"]

# SIGTERM (docker stop, Kubernetes) drains: `deno task` passes it on to the command (a test
# proves it), so no init process is needed in front.
STOPSIGNAL SIGTERM
ENTRYPOINT ["deno", "task"]
CMD ["pipeline"]
