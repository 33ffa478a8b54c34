"""The official Python client (`kubernetes` on PyPI) against rkube-apiserver: list, create,
patch, delete and watch of core and apps resources through its generated models.

Run by tests/tests/python.rs with RKUBE_SERVER set to the API server's URL; exits non-zero on
the first failed assertion."""

import os
import sys
import threading

from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def main():
    cfg = client.Configuration()
    cfg.host = os.environ["RKUBE_SERVER"]
    api = client.ApiClient(cfg)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    names = [n.metadata.name for n in core.list_namespace().items]
    assert "py" in names and "default" in names, names

    cm = core.create_namespaced_config_map(
        "py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg", labels={"app": "py"}), data={"a": "1"})
    )
    assert cm.metadata.uid and cm.data == {"a": "1"}, cm
    patched = core.patch_namespaced_config_map("cfg", "py", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}, patched.data
    listed = core.list_namespaced_config_map("py", label_selector="app=py")
    assert [c.metadata.name for c in listed.items] == ["cfg"], listed

    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="nginx", image="nginx:1.27")]),
            ),
        ),
    )
    created = apps.create_namespaced_deployment("py", deployment)
    assert created.spec.strategy.type == "RollingUpdate", created.spec.strategy
    scaled = apps.patch_namespaced_deployment_scale("web", "py", {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4, scaled
    assert apps.read_namespaced_deployment("web", "py").spec.replicas == 4

    pod = core.create_namespaced_pod(
        "py",
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="p"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox", command=["sleep", "1"])]),
        ),
    )
    assert pod.status.phase == "Pending", pod.status

    # A watch sees a change made after it started.
    seen = []
    start_rv = core.list_namespaced_config_map("py").metadata.resource_version
    w = watch.Watch()

    def writer():
        core.patch_namespaced_config_map("cfg", "py", {"data": {"c": "3"}})

    threading.Timer(0.5, writer).start()
    for event in w.stream(core.list_namespaced_config_map, "py", resource_version=start_rv, timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "MODIFIED":
            w.stop()
    assert ("MODIFIED", "cfg") in seen, seen

    try:
        core.read_namespaced_config_map("missing", "py")
        raise AssertionError("reading a missing object must fail")
    except ApiException as e:
        assert e.status == 404, e

    core.delete_namespaced_config_map("cfg", "py")
    apps.delete_namespaced_deployment("web", "py")
    assert core.list_namespaced_config_map("py").items == []
    print("python client: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"assertion failed: {e}", file=sys.stderr)
        raise
