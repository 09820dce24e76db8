FROM alpine AS a
COPY --from=a /x /y
