FROM alpine
COPY onlyone
