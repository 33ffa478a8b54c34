# scripts/lib/node.sh — the local cluster's nodes, shared by scripts/up and scripts/down (sourced
# after lib/cluster.sh, not run): each node's containerd config and pod network, and the cleanup
# of everything a node's pods leave on the machine.
#
# Node I (0 = the first; scripts/up --nodes N starts 0..N-1) has its own everything, so several
# nodes share one machine the way RUNTIME.md describes:
#   dir          $RKUBE_HOME for node 0, $RKUBE_HOME/nodes/I otherwise, holding
#                containerd/ (config.toml, containerd.sock, root/, state/, runc/, cni/, cni-ipam/),
#                kubelet/ (--root-dir) and pod-logs/ (--pod-logs-dir)
#   name         $RKUBE_NODE_NAME (default: the host name) for node 0, $RKUBE_NODE_NAME-I otherwise
#   network      bridge rkube<I>, pods on 10.244.<I>.0/24 (no masquerading: pods on different
#                nodes reach each other by pod IP through the host). Node 0 lives in the host's
#                network namespace; node I>0 is a "machine" of its own: network namespace
#                rkube-<API port>-n<I> (its containerd, kubelet and rkube-proxy run in it), joined
#                to the host by a veth pair (host side rkv<API port>-<I> 10.245.<I>.1/30, node side
#                eth0 10.245.<I>.2/30, the node's address), default route via the host, and the
#                host routing 10.244.<I>.0/24 via 10.245.<I>.2. Only the network is separate: the
#                daemons enter the namespace with `nsenter --net`, not `ip netns exec`, which would
#                also give each its own mount namespace and hide the kubelet's volume mounts from
#                containerd. setup_node_netns records the names in <dir>/netns for scripts/down.
#   ports        CRI stream server RKUBE_STREAM_PORT+I, kubelet API RKUBE_KUBELET_PORT+10*I,
#                kubelet health RKUBE_KUBELET_HEALTHZ_PORT+10*I

RKUBE_NODE_NAME=${RKUBE_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}
cni_bin_dir=/usr/lib/cni
cni_cache_dir=/var/lib/cni/results

node_dir() { if (($1 == 0)); then echo "$RKUBE_HOME"; else echo "$RKUBE_HOME/nodes/$1"; fi; }
node_name() { if (($1 == 0)); then echo "$RKUBE_NODE_NAME"; else echo "$RKUBE_NODE_NAME-$1"; fi; }
node_bridge() { echo "rkube$1"; }
node_subnet() { echo "10.244.$1.0/24"; }
node_socket() { echo "$(node_dir "$1")/containerd/containerd.sock"; }
node_stream_port() { echo $((RKUBE_STREAM_PORT + $1)); }
node_kubelet_port() { echo $((RKUBE_KUBELET_PORT + 10 * $1)); }
node_healthz_port() { echo $((RKUBE_KUBELET_HEALTHZ_PORT + 10 * $1)); }
# Node I>0's network namespace and the host side of its veth pair; named after the API port so
# that two local clusters (scripts/e2e-cluster next to a user's) keep theirs apart.
node_netns() { echo "rkube-$RKUBE_API_PORT-n$1"; }
node_veth() { echo "rkv$RKUBE_API_PORT-$1"; }
# The host's address on node I's veth (where node I reaches the API server and the registry),
# and node I's own address (its kubelet's --node-ip).
node_host_ip() { echo "10.245.$1.1"; }
node_addr() { echo "10.245.$1.2"; }
# node_record I: the namespace recorded for node I by setup_node_netns ("" if none: node 0, or
# a node started by an older scripts/up, whose daemons ran in the host's namespace).
node_record() { sed -n 's/^netns=//p' "$(node_dir "$1")/netns" 2>/dev/null || true; }

# node_prefix I: the words that run a command in node I's network namespace (none for the
# host's). nsenter execs the command, so a daemon started this way keeps the pid nohup got.
node_prefix() {
  local ns
  ns=$(node_record "$1")
  [[ -z $ns ]] || echo "nsenter --net=/run/netns/$ns"
}

# node_run I COMMAND...: runs COMMAND (a program, not a function) in node I's network namespace.
node_run() {
  local prefix
  prefix=$(node_prefix "$1")
  shift
  # shellcheck disable=SC2086 # node_prefix's words
  $prefix "$@"
}

# A FORWARD chain whose policy is DROP (Docker sets one) would drop the routed pod traffic:
# node I's accept rules carry this comment so scripts/down finds them.
forward_comment() { echo "rkube-$RKUBE_API_PORT-n$1"; }

# setup_node_netns I: creates node I's namespace, veth pair, addresses and routes (idempotent),
# and records them in <dir>/netns.
setup_node_netns() {
  local i=$1 ns veth host_ip addr dir
  ns=$(node_netns "$i")
  veth=$(node_veth "$i")
  host_ip=$(node_host_ip "$i")
  addr=$(node_addr "$i")
  mkdir -p "$(node_dir "$i")"
  printf 'netns=%s\nveth=%s\nforward=%s\n' "$ns" "$veth" "$(forward_comment "$i")" >"$(node_dir "$i")/netns"
  [[ -e /run/netns/$ns ]] || ip netns add "$ns" || return 1
  if [[ ! -e /sys/class/net/$veth ]]; then
    ip link add "$veth" type veth peer name eth0 netns "$ns" || return 1
  fi
  ip addr replace "$host_ip/30" dev "$veth" &&
    ip link set "$veth" up &&
    ip -n "$ns" link set lo up &&
    ip -n "$ns" addr replace "$addr/30" dev eth0 &&
    ip -n "$ns" link set eth0 up &&
    ip -n "$ns" route replace default via "$host_ip" dev eth0 &&
    ip route replace "$(node_subnet "$i")" via "$addr" dev "$veth" || return 1
  # The node routes between its pods' bridge and the host.
  nsenter --net="/run/netns/$ns" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward' || return 1
  if command -v iptables >/dev/null 2>&1 && [[ $(iptables -S FORWARD 2>/dev/null) == *"-P FORWARD DROP"* ]]; then
    for dir in -i -o; do
      iptables -C FORWARD "$dir" "$veth" -m comment --comment "$(forward_comment "$i")" -j ACCEPT 2>/dev/null ||
        iptables -I FORWARD "$dir" "$veth" -m comment --comment "$(forward_comment "$i")" -j ACCEPT || return 1
    done
  fi
}

# teardown_node_netns I: deletes what setup_node_netns made for node I (after its daemons and
# pods are gone): the forward rules, the namespace (taking node I's bridge and its end of the
# veth pair with it), the veth, and with it the route to node I's pods.
teardown_node_netns() {
  local file ns veth comment rule
  file=$(node_dir "$1")/netns
  [[ -f $file ]] || return 0
  ns=$(sed -n 's/^netns=//p' "$file")
  veth=$(sed -n 's/^veth=//p' "$file")
  comment=$(sed -n 's/^forward=//p' "$file")
  if [[ -n $comment ]] && command -v iptables >/dev/null 2>&1; then
    iptables -S FORWARD 2>/dev/null | grep -F -- "--comment $comment " | sed 's/^-A FORWARD //' |
      while read -r rule; do
        # shellcheck disable=SC2086 # the rule's words, as iptables -S printed them
        iptables -D FORWARD $rule 2>/dev/null || true
      done || true
  fi
  if [[ -n $ns && -e /run/netns/$ns ]]; then ip netns delete "$ns" 2>/dev/null || true; fi
  if [[ -n $veth && -e /sys/class/net/$veth ]]; then ip link delete "$veth" 2>/dev/null || true; fi
  rm -f "$file"
}

# write_node_config I TEMPLATE: node I's containerd config, rendered from TEMPLATE
# (deploy/config/containerd.toml) by moving every path under the node's dir, and its CNI conflist.
write_node_config() {
  local i=$1 template=$2 d conf
  d=$(node_dir "$i")/containerd
  mkdir -p "$d/cni" "$d/cni-ipam" "$d/opt" "$(node_dir "$i")/kubelet" "$(node_dir "$i")/pod-logs"
  sed -e "s|/run/containerd/containerd.sock|$d/containerd.sock|g" \
    -e "s|/run/containerd/runc|$d/runc|g" \
    -e "s|\"/run/containerd\"|\"$d/state\"|g" \
    -e "s|/var/lib/containerd|$d/root|g" \
    -e "s|/etc/cni/net.d|$d/cni|g" \
    -e "s|/opt/containerd|$d/opt|g" \
    -e "s|/etc/containerd/certs.d|$d/certs.d|g" \
    -e "s|^\( *stream_server_port = \).*|\1\"$(node_stream_port "$i")\"|" \
    -e "s|\"127.0.0.1:5000/|\"$registry_host/|g" \
    "$template" >"$d/config.toml.tmp"
  # A path the template gained but this function does not move would be shared by all nodes.
  if grep -v '^ *#' "$d/config.toml.tmp" | grep -E '"(/run/containerd|/var/lib/containerd|/etc/cni|/etc/containerd|/opt/containerd)' >/dev/null; then
    echo "node.sh: $template has a path that write_node_config does not move under $d" >&2
    return 1
  fi
  mv "$d/config.toml.tmp" "$d/config.toml"

  # Images keep the name $registry_host/... on every node; on node I>0 that loopback address is
  # the node's own, so this host config sends the pulls to the registry on the host side of the
  # node's veth (plain HTTP). Node 0 names the loopback registry it reaches directly.
  local server="http://$registry_host"
  ((i == 0)) || server="http://$(node_host_ip "$i"):$RKUBE_REGISTRY_PORT"
  mkdir -p "$d/certs.d/$registry_host"
  printf 'server = "%s"\n\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n' \
    "$server" "$server" >"$d/certs.d/$registry_host/hosts.toml"

  # containerd reloads the conflist when it is written, so only write it when it changes.
  conf=$(
    cat <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$(node_bridge "$i")",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$(node_bridge "$i")",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$(node_subnet "$i")" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$d/cni-ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
EOF
  )
  if [[ $(cat "$d/cni/10-rkube.conflist" 2>/dev/null) != "$conf" ]]; then
    printf '%s\n' "$conf" >"$d/cni/10-rkube.conflist"
  fi
}

# delete_node_tasks I: kills and deletes every container task through node I's (running)
# containerd, so runc removes their cgroups and the shims exit cleanly.
delete_node_tasks() {
  local sock ids
  sock=$(node_socket "$1")
  [[ -S $sock ]] || return 0
  ids=$(timeout 30 ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null) || return 0
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086 # one id per word
  timeout 60 ctr -a "$sock" -n k8s.io tasks delete --force $ids >/dev/null 2>&1 || true
}

# cleanup_node I: once node I's containerd is stopped, removes whatever its pods left: shims and
# container processes, pod networks (CNI DEL, as StopPodSandbox would), mounts, the bridge.
cleanup_node() {
  local i=$1 d sock f pid cmdline sockets=() seeds=() doomed
  d=$(node_dir "$i")/containerd
  sock=$d/containerd.sock

  for f in "$d"/state/io.containerd.runtime.v2.task/k8s.io/*/address; do
    [[ -f $f ]] && sockets+=("$(sed 's|^unix://||' "$f")")
  done

  # Shims of this containerd name its socket; their descendants are the containers.
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    cmdline=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    [[ $cmdline == *containerd-shim*" -address $sock "* ]] && seeds+=("$pid")
  done
  if ((${#seeds[@]})); then
    doomed=$(ps -e -o pid=,ppid= | awk -v seeds="${seeds[*]}" '
      BEGIN { n = split(seeds, s, " "); for (k = 1; k <= n; k++) keep[s[k]] = 1 }
      { parent[$1] = $2 }
      END {
        for (changed = 1; changed;) {
          changed = 0
          for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 }
        }
        for (p in keep) print p
      }')
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $doomed 2>/dev/null || true
    for pid in $doomed; do
      while [[ -e /proc/$pid && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do sleep 0.05; done
    done
  fi
  for f in "${sockets[@]}"; do
    [[ $f == /run/containerd/s/* ]] && rm -f "$f"
  done

  # CNI DEL in the node's namespace: the pods' host-side veths and portmap's rules are there.
  local prefix=""
  [[ -n $(node_record "$i") && -e /run/netns/$(node_record "$i") ]] && prefix=$(node_prefix "$i")
  cni_teardown "$(node_bridge "$i")" "$d" "$prefix"

  # Deepest first: container rootfs overlays, sandbox shm, netns bind mounts.
  awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
    awk -F/ '{ print NF, $0 }' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done

  if [[ -e /sys/class/net/$(node_bridge "$i") ]]; then
    ip link delete "$(node_bridge "$i")" 2>/dev/null || true
  fi
}

# cni_teardown NETWORK DIR [PREFIX]: runs CNI DEL (under PREFIX's words, e.g. nsenter), with the configuration libcni cached at ADD time, for
# every attachment on NETWORK or with its netns under DIR (the CRI's own loopback network), and
# drops those cache entries. Removes portmap's iptables rules, which outlive the netns.
cni_teardown() {
  # shellcheck disable=SC2086 # the prefix's words
  ${3:-} python3 - "$1" "$2" "$cni_cache_dir" "$cni_bin_dir" <<'PY'
import base64, json, os, subprocess, sys

network, state_dir, cache_dir, bin_dir = sys.argv[1:5]
try:
    names = sorted(os.listdir(cache_dir))
except FileNotFoundError:
    names = []
for name in names:
    path = os.path.join(cache_dir, name)
    try:
        with open(path) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        continue
    interfaces = (entry.get("result") or {}).get("interfaces") or []
    sandboxes = [i.get("sandbox") or "" for i in interfaces]
    if entry.get("networkName") != network and not any(s.startswith(state_dir + "/") for s in sandboxes):
        continue
    try:
        conflist = json.loads(base64.b64decode(entry.get("config", "")))
    except ValueError:
        conflist = None
    netns = next((s for s in sandboxes if s and os.path.exists(s)), "")
    if isinstance(conflist, dict):
        for plugin in reversed(conflist.get("plugins") or [conflist]):
            kind = plugin.get("type", "")
            if not kind or "/" in kind:
                continue
            conf = dict(plugin, name=conflist.get("name"), cniVersion=conflist.get("cniVersion"))
            # What the runtime passed at ADD: portmap removes a pod's rules only when told its ports.
            capability_args = entry.get("capabilityArgs") or {}
            runtime_config = {k: capability_args[k] for k, on in (plugin.get("capabilities") or {}).items()
                              if on and k in capability_args}
            if runtime_config:
                conf["runtimeConfig"] = runtime_config
            env = dict(os.environ, CNI_COMMAND="DEL", CNI_CONTAINERID=entry.get("containerId", ""),
                       CNI_NETNS=netns, CNI_IFNAME=entry.get("ifName", "eth0"), CNI_PATH=bin_dir)
            subprocess.run([os.path.join(bin_dir, kind)], input=json.dumps(conf).encode(), env=env,
                           capture_output=True, check=False)
    os.remove(path)
PY
}
