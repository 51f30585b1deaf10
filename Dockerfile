# Drover: one image for every service; the command picks it (api | scheduler | runner | start).
#   docker build -t drover .
#   docker run --rm -v ./secrets:/run/secrets/drover:ro -e DROVER_ADMIN_TOKEN_FILE=/run/secrets/drover/admin-token \
#     -e REDIS_URL_FILE=/run/secrets/drover/redis-url drover api
# Runs as uid 1000 (the image's `node` user) and works with a read-only root filesystem as long as /tmp is
# writable (tmpfs in compose, emptyDir in Kubernetes): runners keep each job's working directory there.
# Runners are the exception: docker-compose.yml and deploy/k8s start them as root with a handful of capabilities,
# only so that every job runs as an unprivileged uid of its own (RUNNER_JOB_UIDS) that cannot read the runner's
# secrets, environment or memory, nor another job's. A runner left at uid 1000 runs jobs as uid 1000, and they can
# read all of it.
FROM node:24-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/core/package.json packages/core/
COPY services/api/package.json services/api/
COPY services/scheduler/package.json services/scheduler/
COPY services/runner/package.json services/runner/
COPY cli/package.json cli/
COPY ui/package.json ui/
# Dependencies first (cached while only sources change); the project's own prepare step (spawner helper, dashboard)
# needs the sources, so it runs in the build below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
# The spawner helper must build here: runners in the image never fall back to forking themselves.
RUN DROVER_REQUIRE_SPAWNER=1 npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# tini as PID 1: it forwards SIGTERM to node (which drains) and reaps processes that jobs leave behind
# (a job's background children are re-parented to PID 1 when the job's shell exits; node would not reap them).
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
# The shipped setups run each job as a uid of its own, which has no passwd entry. For one user shared by all jobs
# instead: RUNNER_JOB_USER=drover-job (mount a tmpfs or emptyDir at its HOME /home/job) or nobody; a runner refuses
# to start if its job user is missing, so the build checks nobody is there. Then no setuid/setgid programs are left:
# a job must find no way back to root (no-new-privileges stops them too; this holds without it).
RUN groupadd --system --gid 10001 drover-job \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/job --no-create-home --shell /usr/sbin/nologin drover-job \
 && install -d -o 10001 -g 10001 -m 0700 /home/job \
 && { getent passwd nobody >/dev/null || { echo 'the base image has no user nobody' >&2; exit 1; }; } \
 && find / -xdev -perm /6000 -type f -exec chmod a-s {} +
# `drover start` keeps its generated admin token in DROVER_DATA_DIR; it needs a REDIS_URL here (no redis-server
# in the image). The three services do not use the data directory.
RUN mkdir -p /var/lib/drover && chown 1000:1000 /var/lib/drover
ENV NODE_ENV=production \
    DROVER_HOST=0.0.0.0 \
    DROVER_METRICS_HOST=0.0.0.0 \
    DROVER_DATA_DIR=/var/lib/drover \
    RUNNER_WORK_DIR=/tmp/drover-jobs
WORKDIR /app
# Owned by root and read-only for the service user: the code cannot be modified by the jobs it runs.
COPY --from=build /app /app
# Numeric, so Kubernetes' runAsNonRoot can verify it (uid 1000 is `node` in the base image). Secrets come as files
# (*_FILE variables, mounted under /run/secrets), owned by the uid that reads them, mode 0400.
USER 1000:1000
# 8606: the API (DROVER_PORT). 9464: /metrics, /healthz, /readyz of every service (DROVER_METRICS_PORT).
EXPOSE 8606 9464
ENTRYPOINT ["/usr/bin/tini", "--", "node", "cli/dist/main.js"]
CMD ["start"]
