# One image for every role of the hub, chosen by the command:
#   all-in-one dev node   crossbar start --cbdir /app/.crossbar                      (default)
#   master node           crossbar start --cbdir /app/.crossbar --config master.json
#   client node           crossbar start --cbdir /app/.crossbar --config client.json
#   linked client node    python -m components.node.topology client --peer HOST:8090 > /app/.crossbar/node.json
#                         && crossbar start --cbdir /app/.crossbar --config node.json
#   schema migrations     python -m components.node migrate
#   user sync             python -m components.usersync provision|migrate
#   SNS/SQS emulator      moto_server -H 0.0.0.0 -p 4566
#   users and tokens      python -m components.auth adduser|passwd|token
# Ports: 8080 public (web UI, /ws, /auth, /publish, /health, /metrics),
# 8090 internal on client nodes (router-to-router links, /health, /metrics).

# --- autobahn.js from npm --------------------------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- Python dependencies into a venv ----------------------------------------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libffi-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY setup.cfg pyproject.toml README.md constraints.txt ./
COPY components ./components
# every package pinned by the lock (constraints.txt, `make lock`)
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir -c constraints.txt .

# --- runtime -----------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    HUB_INTERFACE=0.0.0.0 \
    CROSSBAR_DIR=/app/.crossbar
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /app --shell /usr/sbin/nologin hub
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=hub:hub .crossbar/config.json .crossbar/master.json .crossbar/client.json ./.crossbar/
COPY --chown=hub:hub web ./web
COPY --from=web --chown=hub:hub /src/web/node_modules ./web/node_modules
# the production configs follow the dev config they derive from, whatever was committed
RUN python -m components.node.topology write --directory /app/.crossbar \
 && chown hub:hub /app/.crossbar/master.json /app/.crossbar/client.json
# the node directory holds the dev secret and SQLite files: writable by hub only
# the dev config's guest worker (the local SNS/SQS emulator) runs .venv/bin/python from /app
RUN ln -s /opt/venv /app/.venv \
 && chmod 0700 /app/.crossbar
USER hub
EXPOSE 8080 8090
VOLUME ["/app/.crossbar"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"]
CMD ["crossbar", "start", "--cbdir", "/app/.crossbar"]
