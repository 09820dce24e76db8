FROM nginx
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m30s --start-interval=500ms --retries=3 \
  CMD curl -f http://localhost/ || exit 1
HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]
HEALTHCHECK NONE
ONBUILD COPY . /app/src
ONBUILD RUN <<EOF
make
EOF
ONBUILD ADD --chown=1000:1000 https://example.com/file.tgz /tmp/
