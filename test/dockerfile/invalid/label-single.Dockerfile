FROM alpine
LABEL justakey
