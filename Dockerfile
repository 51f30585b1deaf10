# Drover: one image for every service; the command picks it (api | scheduler | runner | start).
FROM node:22-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/core/package.json packages/core/
COPY services/api/package.json services/api/
COPY services/scheduler/package.json services/scheduler/
COPY services/runner/package.json services/runner/
COPY cli/package.json cli/
COPY scripts scripts
COPY services/runner/native services/runner/native
# The spawner helper must build here: runners in the image never fall back to forking themselves.
RUN DROVER_REQUIRE_SPAWNER=1 npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production DROVER_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app /app
USER node
EXPOSE 8606
ENTRYPOINT ["node", "cli/dist/main.js"]
CMD ["start"]
