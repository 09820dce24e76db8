FROM alpine
ENV --x=1 A=1
