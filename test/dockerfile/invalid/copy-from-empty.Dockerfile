FROM alpine
COPY --from=${X:-} a b
