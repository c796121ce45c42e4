# lbproxy in a container: the same `lbproxy` command as outside Docker (docker-compose.yml runs every part).
# The slim image has no C compiler, so the hot path installs as pure Python (buildsystem/lbproxy_build.py);
# a base image with gcc and python3-dev compiles it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY buildsystem ./buildsystem
COPY lbproxy ./lbproxy
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --no-create-home lbproxy \
    && mkdir -p /data && chown lbproxy:lbproxy /data

# A named volume mounted on /data starts out owned by lbproxy (Docker copies the mount point's ownership).
USER lbproxy
WORKDIR /data
EXPOSE 4599 8080 8443
ENTRYPOINT ["lbproxy"]
CMD ["--help"]
