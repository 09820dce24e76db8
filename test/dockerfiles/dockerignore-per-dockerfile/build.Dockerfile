FROM {{busybox}}
COPY *.txt /files/
