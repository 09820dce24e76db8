FROM {{busybox}}
COPY sub/f.txt /f.txt
