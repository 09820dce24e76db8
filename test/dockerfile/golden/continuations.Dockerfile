FROM alpine
RUN echo one \
    # a comment inside the continuation
    two \

    three
run echo lowercase keyword
Env A=1 \
    B=2
LABEL "com.example.quoted"="a value" \
      other='single $quoted'
ENV LEGACY some value with spaces
ARG ONE TWO=2 THREE="three 3"
MAINTAINER someone@example.com
