FROM alpine
RUN --mount=type=bind,from=$X,target=/x true
