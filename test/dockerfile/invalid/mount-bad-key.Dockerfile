FROM alpine
RUN --mount=type=bind,target=/x,colour=red true
