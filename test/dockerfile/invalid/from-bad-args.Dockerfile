FROM alpine as
