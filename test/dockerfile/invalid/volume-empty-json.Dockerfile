FROM alpine
VOLUME [""]
