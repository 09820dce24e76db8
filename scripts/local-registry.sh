# Sourced by scripts/demo.sh and bench/run.sh: starts Debian's docker-registry on 127.0.0.1, storing
# under a given directory, and waits until it answers.
#   start_local_registry DIR PORT   -> sets registry_pid; logs to DIR/registry.log
start_local_registry() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  cat >"$dir/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "docker-registry did not answer on 127.0.0.1:$port (log: $dir/registry.log)" >&2
  return 1
}
