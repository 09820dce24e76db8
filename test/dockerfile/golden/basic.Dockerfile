# syntax=docker/dockerfile:1.7
FROM alpine:3.19
LABEL org.opencontainers.image.title="kiln test" version=1.0
ENV PATH=/usr/local/bin:$PATH HOME=/root
WORKDIR /app
COPY package.json ./
RUN apk add --no-cache curl
EXPOSE 8080 9090/udp
USER app:app
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGTERM
CMD ["node", "server.js"]
