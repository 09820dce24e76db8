FROM debian
RUN <<EOF
apt-get update
apt-get install -y curl
EOF
RUN <<-'SCRIPT' bash
	echo "$HOME is not expanded by the builder"
	SCRIPT
RUN cat <<A > /a && cat 3<<"B" > /b
first $X
A
second
B
COPY <<EOF /etc/motd
Welcome
EOF
COPY --chmod=0755 <<-"RUNME" <<TWO /usr/local/bin/
	#!/bin/sh
	echo hi
	RUNME
two
TWO
RUN ["sh", "-c", "cat <<EOF"]
CMD echo done
