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
#                nodes reach each other by pod IP through the host)
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
    -e "s|^\( *stream_server_port = \).*|\1\"$(node_stream_port "$i")\"|" \
    -e "s|\"127.0.0.1:5000/|\"$registry_host/|g" \
    "$template" >"$d/config.toml.tmp"
  # A path the template gained but this function does not move would be shared by all nodes.
  if grep -v '^ *#' "$d/config.toml.tmp" | grep -q -E '"(/run/containerd|/var/lib/containerd|/etc/cni|/opt/containerd)'; then
    echo "node.sh: $template has a path that write_node_config does not move under $d" >&2
    return 1
  fi
  mv "$d/config.toml.tmp" "$d/config.toml"

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

  cni_teardown "$(node_bridge "$i")" "$d"

  # Deepest first: container rootfs overlays, sandbox shm, netns bind mounts.
  awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
    awk -F/ '{ print NF, $0 }' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done

  if [[ -e /sys/class/net/$(node_bridge "$i") ]]; then
    ip link delete "$(node_bridge "$i")" 2>/dev/null || true
  fi
}

# cni_teardown NETWORK DIR: runs CNI DEL, with the configuration libcni cached at ADD time, for
# every attachment on NETWORK or with its netns under DIR (the CRI's own loopback network), and
# drops those cache entries. Removes portmap's iptables rules, which outlive the netns.
cni_teardown() {
  python3 - "$1" "$2" "$cni_cache_dir" "$cni_bin_dir" <<'PY'
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
