FROM {{busybox}}
COPY f.txt /f.txt
