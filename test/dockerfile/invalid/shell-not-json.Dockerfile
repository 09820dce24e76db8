FROM alpine
SHELL /bin/bash -c
