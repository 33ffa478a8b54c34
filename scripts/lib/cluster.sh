# scripts/lib/cluster.sh — shared by scripts/up and scripts/down (sourced, not run): where the
# local cluster keeps its state, and how its daemons are tracked by pid file.
#
#   $RKUBE_HOME (default /var/lib/rkube)
#     etcd/              etcd data
#     registry/          the local image registry's config and storage
#     containerd/        node 0's containerd (config, socket, images, state; see lib/node.sh)
#     kubelet/           node 0's kubelet --root-dir
#     pod-logs/          node 0's container logs (kubelet --pod-logs-dir)
#     nodes/I/           the same three for extra node I (scripts/up --nodes N), and netns,
#                        naming its network namespace and veth (see lib/node.sh)
#     run/NAME.pid       pid of each daemon that scripts/up started
#     log/NAME.log       its stdout and stderr
#     pki/               the cluster CA, API server, ServiceAccount, kubelet and client
#                        certificates and keys (rkubectl cluster init)
#     *.kubeconfig       one per daemon and node, each with its own client certificate;
#                        admin.kubeconfig is the admin user's (group system:masters)

RKUBE_HOME=${RKUBE_HOME:-/var/lib/rkube}
RKUBE_ETCD_PORT=${RKUBE_ETCD_PORT:-2379}
RKUBE_ETCD_PEER_PORT=${RKUBE_ETCD_PEER_PORT:-2380}
RKUBE_API_PORT=${RKUBE_API_PORT:-6443}
RKUBE_SCHEDULER_PORT=${RKUBE_SCHEDULER_PORT:-10259}
RKUBE_CONTROLLER_MANAGER_PORT=${RKUBE_CONTROLLER_MANAGER_PORT:-10257}
RKUBE_REGISTRY_PORT=${RKUBE_REGISTRY_PORT:-5000}
RKUBE_KUBELET_PORT=${RKUBE_KUBELET_PORT:-10250}
RKUBE_KUBELET_HEALTHZ_PORT=${RKUBE_KUBELET_HEALTHZ_PORT:-10248}
RKUBE_STREAM_PORT=${RKUBE_STREAM_PORT:-10350}

run_dir=$RKUBE_HOME/run
log_dir=$RKUBE_HOME/log
etcd_url=http://127.0.0.1:$RKUBE_ETCD_PORT
api_url=https://127.0.0.1:$RKUBE_API_PORT
pki_dir=$RKUBE_HOME/pki
registry_host=127.0.0.1:$RKUBE_REGISTRY_PORT

# The control plane in start order; scripts/down stops it in reverse, after the nodes
# (kubelet-I, containerd-I) and the registry.
daemons=(etcd rkube-apiserver rkube-scheduler rkube-controller-manager)

pid_file() { echo "$run_dir/$1.pid"; }

# The program a daemon's command line must name (its pid file could name a recycled pid).
daemon_program() {
  case $1 in
    containerd-*) echo containerd ;;
    kubelet-*) echo rkube-kubelet ;;
    rkube-proxy-*) echo rkube-proxy ;;
    registry) echo docker-registry ;;
    *) echo "$1" ;;
  esac
}

# Prints the pid of daemon $1 if its pid file names a live process that is that daemon
# (a recycled pid, or a zombie nobody reaped, doesn't count); fails otherwise.
running_pid() {
  local name=$1 pid state cmdline
  pid=$(cat "$(pid_file "$name")" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$(daemon_program "$name")"* ]] || return 1
  echo "$pid"
}

# The node indexes that have a pid file (what scripts/up started), ascending.
started_nodes() {
  local f i
  for f in "$run_dir"/containerd-*.pid "$run_dir"/kubelet-*.pid; do
    [[ -e $f ]] || continue
    i=${f##*-}
    echo "${i%.pid}"
  done | sort -n -u
}
