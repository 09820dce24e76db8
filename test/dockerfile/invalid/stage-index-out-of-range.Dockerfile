FROM alpine
COPY --from=3 /x /y
