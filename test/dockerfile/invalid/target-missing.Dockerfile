FROM alpine AS a
