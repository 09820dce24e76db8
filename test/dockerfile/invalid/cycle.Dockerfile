FROM alpine AS a
COPY --from=c /x /y
FROM alpine AS b
COPY --from=a /x /y
FROM alpine AS c
COPY --from=b /x /y
