FROM alpine
RUN --mount=type=bind,target=/x,mode=0700 true
