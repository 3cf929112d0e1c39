# consentd and consentctl, built from source in one stage and shipped in a
# minimal image in the next.
#
#   docker build -t consentd .
#   docker run -p 4222:4222 -v consent-data:/data -v "$PWD/tls:/tls:ro" consentd \
#     --listen 0.0.0.0:4222 --tls-cert /tls/server.pem --tls-key /tls/server-key.pem
#
# (--listen 0.0.0.0:4222 so that the embedded NATS server is reachable from
# outside the container, which consentd allows only with TLS: see
# docs/security.md; with --nats-url no port is needed.)

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/consentd ./cmd/consentd \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/consentctl ./cmd/consentctl \
 && mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/consentd /out/consentctl /usr/local/bin/
# The data directory belongs to the unprivileged user the image runs as; a
# named volume mounted there starts with this ownership.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot
ENV CONSENTD_DATA_DIR=/data
VOLUME /data
EXPOSE 4222
ENTRYPOINT ["/usr/local/bin/consentd"]
