# nightwatch: one image for every replica. Build: docker build -t nightwatch .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md schema.sql ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/nightwatch --create-home nightwatch
USER 10001
WORKDIR /var/lib/nightwatch
ENV PYTHONUNBUFFERED=1 \
    NIGHTWATCH_HTTP__HOST=0.0.0.0 \
    NIGHTWATCH_HTTP__PORT=8080
EXPOSE 8080
# `nightwatch run` refuses a database schema older than itself: run the upgrade first, as an init
# step with the same image and database URL (deploy/kubernetes/deployment.yaml has it as an
# initContainer; with Docker alone: `docker run --rm -e NIGHTWATCH_DATABASE__URL=... nightwatch db upgrade`).
# It is idempotent and takes a database lock, so every replica may run it.
ENTRYPOINT ["nightwatch"]
CMD ["run"]
