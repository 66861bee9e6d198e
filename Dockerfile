# The sessiondb image: the wheel and its pinned dependencies installed once, at build time,
# run as an unprivileged user. Every fleet role is this image with another command:
#   docker build -t sessiondb .
#   docker run --rm sessiondb --version
# docker-compose.yml runs the whole fleet from it.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY sessiondb ./sessiondb
COPY store ./store
COPY tasks ./tasks
COPY workers ./workers
COPY ops ./ops
# sessiondb and every dependency as wheels, so the final stage needs no compiler and no index
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home sessiondb
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels sessiondb && rm -rf /wheels
USER sessiondb
WORKDIR /data
ENV SESSIONDB_ROOT=/data/store \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["sessiondb"]
CMD ["--help"]
