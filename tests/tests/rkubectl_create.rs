//! `rkubectl create <kind>` against the real kubectl (v1.33) on the same API server: every
//! generator's `-o yaml --dry-run=client` output must be byte-identical to kubectl's, the
//! objects both really create (twin names) must be stored alike, and bad flags or server
//! refusals must read the same on stderr with the same exit code. `create token` must issue a
//! token the server accepts.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver --bins`.

mod support;

use rkube_testkit::TestPki;
use serde_json::Value;
use std::path::Path;
use support::rkubectl::*;
use support::*;

/// rkubectl names itself in its help hints (`See 'rkubectl create ... -h'`); kubectl does too.
fn as_kubectl(text: &str) -> String {
    text.replace("rkubectl", "kubectl")
}

/// Runs `args` with both clients and asserts stdout, stderr and exit code agree; returns
/// kubectl's run.
fn same(env: &Env, args: &[&str]) -> Out {
    let k = env.run(args);
    let r = rk(env, args);
    assert_eq!(
        (r.code, r.stdout.as_str(), as_kubectl(&r.stderr)),
        (k.code, k.stdout.as_str(), k.stderr.clone()),
        "rkubectl {args:?} (left) differs from kubectl (right)"
    );
    k
}

/// Splits a case line into arguments: `{D}` is the fixture directory, `~` a space inside one
/// argument (cron schedules).
fn case(line: &str, dir: &Path) -> Vec<String> {
    line.split_whitespace().map(|a| a.replace("{D}", &dir.to_string_lossy()).replace('~', " ")).collect()
}

/// Files the `--from-file`, `--from-env-file` and `--cert/--key` flags read.
fn write_fixtures(dir: &Path) {
    std::fs::write(dir.join("a.txt"), "hello").unwrap();
    std::fs::create_dir_all(dir.join("d/sub")).unwrap();
    std::fs::write(dir.join("d/one"), "x\n").unwrap();
    std::fs::write(dir.join("d/bin.dat"), b"bin\x00\xff").unwrap();
    std::fs::write(dir.join("d/sub/skipped"), "not read").unwrap();
    std::fs::write(dir.join("e.env"), "# comment\nA=1\n  #indented comment\nB=2 \n\nUNSET_IN_TESTS_XYZ\n").unwrap();
    std::fs::write(dir.join("bad.env"), "B C=1\n").unwrap();
    std::fs::write(dir.join("cfg.json"), "{\"auths\":{}}").unwrap();
    let pki = TestPki::new().unwrap();
    let (cert, key) = pki.client_files("tls-user", &[]).unwrap();
    std::fs::copy(cert, dir.join("tls.crt")).unwrap();
    std::fs::copy(key, dir.join("tls.key")).unwrap();
}

const DRY_RUN_CASES: &[&str] = &[
    // namespace, deployment
    "create namespace n",
    "create ns n -n other",
    "create ns",
    "create deployment web --image=nginx --image=busybox:1.36 --port=80",
    "create deploy web --image=reg.io:5000/team/app:v1@sha256:abc -r 3 -n other",
    "create deployment web --image=nginx -n other -- sleep 10",
    "create deployment web --image=nginx --image=busybox -- sleep 10",
    "create deployment web",
    "create deployment a b --image=x",
    // configmap
    "create configmap c --from-literal=z=1 --from-literal=a=2 --from-file={D}/a.txt --from-file=k2={D}/a.txt --from-file={D}/d",
    "create cm c --from-env-file={D}/e.env",
    "create cm c --from-literal=a=1 --append-hash",
    "create cm c --from-file={D}/d --append-hash -n other",
    "create cm c --from-literal=a",
    "create cm c --from-literal=a=1 --from-env-file={D}/e.env",
    "create cm c --from-file={D}/nope.txt",
    "create cm c --from-file=bad/key={D}/a.txt",
    "create cm c --from-literal=a=1 --from-literal=a=2",
    "create cm c --from-env-file={D}/bad.env",
    "create cm",
    // secrets
    "create secret generic s --from-literal=a=1 --from-file={D}/a.txt --type=Opaque",
    "create secret generic s --from-literal=a=1 --append-hash",
    "create secret generic s --from-file={D}/d --append-hash --type=custom -n other",
    "create secret generic s",
    "create secret generic s --from-literal=a=1 --from-literal=a=2",
    "create secret generic",
    "create secret tls t --cert={D}/tls.crt --key={D}/tls.key",
    "create secret tls t --cert={D}/tls.crt --key={D}/tls.key --append-hash",
    "create secret tls t --cert={D}/tls.crt",
    "create secret tls t --cert={D}/a.txt --key={D}/tls.key",
    "create secret docker-registry r --docker-server=reg.io --docker-username=u --docker-password=p --docker-email=e@x",
    "create secret docker-registry r --docker-username=u --docker-password=p<&>",
    "create secret docker-registry r --docker-username=u",
    "create secret docker-registry r --from-file=.dockerconfigjson={D}/cfg.json",
    // service accounts
    "create serviceaccount sa1",
    "create sa sa1 -n other",
    // roles and bindings
    "create role r --verb=get,list --verb=watch --resource=pods,deployments.apps,pods/log --resource-name=a --resource-name=b",
    "create role r --verb=* --verb=get --resource=po,deploy,rs.apps,svc",
    "create role r --verb=fly --resource=pods",
    "create role r --verb=get",
    "create role r --resource=pods",
    "create role r --verb=get --resource=nosuchthing",
    "create role r --verb=bind --resource=pods",
    "create role r --verb=impersonate --resource=users,serviceaccounts",
    "create clusterrole c --verb=get --resource=pods --non-resource-url=/logs/*",
    "create clusterrole c --verb=get,post --non-resource-url=/logs,/healthz",
    "create clusterrole c --aggregation-rule=a=b,c=d",
    "create clusterrole c",
    "create clusterrole c --verb=get",
    "create clusterrole c --verb=get --non-resource-url=logs",
    "create clusterrole c --verb=list --non-resource-url=/logs --aggregation-rule=a=b",
    "create clusterrole c --verb=watch --non-resource-url=/logs",
    "create rolebinding rb --role=r --user=u1 --user=u2 --group=g --serviceaccount=ns1:sa1",
    "create rolebinding rb --clusterrole=c -n other",
    "create rolebinding rb --clusterrole=c --role=r",
    "create rolebinding rb",
    "create rolebinding rb --role=r --serviceaccount=bad",
    "create clusterrolebinding crb --clusterrole=c --user=u --serviceaccount=a:b --group=g",
    "create clusterrolebinding crb",
    // jobs
    "create job j --image=busybox:1.36 -- sleep 5",
    "create job j --image=busybox -n other",
    "create job j",
    "create job j --image=busybox --from=cronjob/x",
    "create cronjob cj --image=busybox --schedule=*/1~*~*~*~* --restart=Never -- date",
    "create cronjob cj --image=busybox --schedule=@hourly -n other",
    "create cronjob cj --image=busybox",
    // services
    "create service clusterip s --tcp=80:8080 --tcp=443",
    "create service clusterip s --tcp=80:8080,90:http -n other",
    "create service clusterip s --clusterip=None",
    "create service clusterip s",
    "create service clusterip s --tcp=abc",
    "create service nodeport s --tcp=80:8080 --node-port=30080",
    "create service loadbalancer s --tcp=80",
    "create svc externalname s --external-name=example.com",
    "create service externalname s --external-name=Bad_Name",
    "create service externalname s",
    "create service clusterip",
    // ingress
    "create ingress i --rule=foo.com/bar=svc:80 --rule=foo.com/baz*=svc2:http,tls=sec --rule=/path=svc3:8080 --class=nginx --default-backend=def:80 --annotation=a=b",
    "create ingress i --rule=a/=s:1,tls=x --rule=b/=s:1,tls --rule=c/=s:1,tls=y --rule=d/=s:1,tls=x --rule=a/p=s:1,tls=z -n other",
    "create ingress i",
    "create ingress i --rule=bad",
    "create ingress i --default-backend=bad",
    "create ingress i --default-backend=svc:80 --annotation=bad",
    // pdb, priorityclass, quota
    "create pdb p --selector=app=x --min-available=1",
    "create poddisruptionbudget p --selector=app~in~(b,a),x=y,!z,w --max-unavailable=50% -n other",
    "create pdb p --selector=app=x",
    "create pdb p --min-available=1",
    "create pdb p --selector=app=x --min-available=1 --max-unavailable=1",
    "create priorityclass pc --value=1000 --global-default --description=d --preemption-policy=Never",
    "create pc pc",
    "create quota q --hard=cpu=1000m,memory=1024Mi,count/pods=2 --scopes=BestEffort,NotTerminating",
    "create quota q",
    "create quota q --hard=cpu",
];

#[test]
fn dry_run_yaml_and_flag_errors_match_kubectl() {
    let env = Env::start();
    let dir = env.dir.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    write_fixtures(&dir);
    let mut successes = 0;
    for line in DRY_RUN_CASES {
        let mut args = case(line, &dir);
        // Flags before `--` so the command after it stays the container's.
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.splice(at..at, ["--dry-run=client".to_string(), "-o".into(), "yaml".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let k = same(&env, &args);
        if k.code == 0 {
            successes += 1;
            assert!(k.stdout.contains("creationTimestamp: null"), "{args:?}: {}", k.stdout);
        }
    }
    // Both the objects and the refusals are covered.
    assert!(successes >= 45, "only {successes} cases succeeded");

    // The other outputs of a client-side dry run.
    for args in [
        vec!["create", "sa", "x", "--dry-run=client"],
        vec!["create", "sa", "x", "--dry-run=client", "-o", "name"],
        vec!["create", "ns", "x", "--dry-run=client", "-o", "json"],
    ] {
        let k = env.run(&args);
        let r = rk(&env, &args);
        assert_eq!((r.code, &r.stderr), (0, &String::new()), "{args:?}");
        if args.contains(&"json") {
            // Key order follows Go's structs in kubectl; the content must agree.
            let (kv, rv): (Value, Value) =
                (serde_json::from_str(&k.stdout).unwrap(), serde_json::from_str(&r.stdout).unwrap());
            assert_eq!(rv, kv, "{args:?}");
        } else {
            assert_eq!(r.stdout, k.stdout, "{args:?}");
        }
    }
    // Nothing was created by any of that.
    let (code, _) = env.rest("/api/v1/namespaces/default/serviceaccounts/sa1");
    assert_eq!(code, 404);
}

/// An object as stored, minus what differs between any two creations: uid (also where the
/// object names itself, as a Job's selector does), resourceVersion, timestamps, managedFields,
/// allocated IPs and node ports; the twin prefixes become one.
fn normalized(env: &Env, path: &str) -> Value {
    let mut obj = env.stored(path);
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("no uid").to_string();
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"] {
            m.remove(f);
        }
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        && obj_kind_is_service(spec)
    {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                p.as_object_mut().map(|p| p.remove("nodePort"));
            }
        }
    }
    let text = obj.to_string().replace(&uid, "UID").replace("kk-", "NN-").replace("rr-", "NN-");
    serde_json::from_str(&text).unwrap()
}

fn obj_kind_is_service(spec: &serde_json::Map<String, Value>) -> bool {
    spec.contains_key("clusterIP") || spec.get("type").is_some_and(|t| t == "NodePort" || t == "LoadBalancer")
}

/// (arguments with `{N}` for the name, REST path with `{N}`) of objects both clients create.
const REAL_CASES: &[(&str, &str)] = &[
    (
        "create deployment {N}-dep --image=nginx --image=busybox:1.36 --port=80 -n gen",
        "/apis/apps/v1/namespaces/gen/deployments/{N}-dep",
    ),
    (
        "create deployment {N}-cmd --image=busybox -n gen -- sleep 3600",
        "/apis/apps/v1/namespaces/gen/deployments/{N}-cmd",
    ),
    (
        "create configmap {N}-cm --from-literal=a=1 --from-file={D}/d --from-file=k={D}/a.txt -n gen",
        "/api/v1/namespaces/gen/configmaps/{N}-cm",
    ),
    ("create configmap {N}-env --from-env-file={D}/e.env", "/api/v1/namespaces/default/configmaps/{N}-env"),
    (
        "create secret generic {N}-sec --from-literal=a=1 --from-file={D}/d --type=custom -n gen",
        "/api/v1/namespaces/gen/secrets/{N}-sec",
    ),
    ("create secret tls {N}-tls --cert={D}/tls.crt --key={D}/tls.key -n gen", "/api/v1/namespaces/gen/secrets/{N}-tls"),
    (
        "create secret docker-registry {N}-reg --docker-username=u --docker-password=p --docker-email=e@x -n gen",
        "/api/v1/namespaces/gen/secrets/{N}-reg",
    ),
    ("create serviceaccount {N}-sa -n gen", "/api/v1/namespaces/gen/serviceaccounts/{N}-sa"),
    (
        "create role {N}-role --verb=get,list --resource=pods,deployments.apps,pods/log --resource-name=x -n gen",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/gen/roles/{N}-role",
    ),
    (
        "create clusterrole {N}-cr --verb=get --resource=pods --non-resource-url=/logs",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/{N}-cr",
    ),
    (
        "create clusterrole {N}-agg --aggregation-rule=rbac.example.com/aggregate=true",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/{N}-agg",
    ),
    (
        "create rolebinding {N}-rb --role=x --user=u --group=g --serviceaccount=gen:s -n gen",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/gen/rolebindings/{N}-rb",
    ),
    (
        "create clusterrolebinding {N}-crb --clusterrole=x --user=u --serviceaccount=gen:s",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{N}-crb",
    ),
    ("create job {N}-job --image=busybox -n gen -- sleep 5", "/apis/batch/v1/namespaces/gen/jobs/{N}-job"),
    ("create job {N}-jobf --from=cronjob/source -n gen", "/apis/batch/v1/namespaces/gen/jobs/{N}-jobf"),
    (
        "create cronjob {N}-cj --image=busybox --schedule=*/5~*~*~*~* -n gen -- date",
        "/apis/batch/v1/namespaces/gen/cronjobs/{N}-cj",
    ),
    ("create service clusterip {N}-svc --tcp=80:8080 --tcp=443 -n gen", "/api/v1/namespaces/gen/services/{N}-svc"),
    ("create service clusterip {N}-hl --clusterip=None -n gen", "/api/v1/namespaces/gen/services/{N}-hl"),
    ("create service nodeport {N}-np --tcp=80 -n gen", "/api/v1/namespaces/gen/services/{N}-np"),
    ("create service loadbalancer {N}-lb --tcp=80:http -n gen", "/api/v1/namespaces/gen/services/{N}-lb"),
    (
        "create service externalname {N}-ext --external-name=example.com -n gen",
        "/api/v1/namespaces/gen/services/{N}-ext",
    ),
    (
        "create ingress {N}-ing --rule=foo.com/bar*=svc:80,tls=sec --rule=/x=svc:http --class=nginx -n gen",
        "/apis/networking.k8s.io/v1/namespaces/gen/ingresses/{N}-ing",
    ),
    (
        "create pdb {N}-pdb --selector=app=x --min-available=1 -n gen",
        "/apis/policy/v1/namespaces/gen/poddisruptionbudgets/{N}-pdb",
    ),
    ("create namespace {N}-ns", "/api/v1/namespaces/{N}-ns"),
];

#[test]
fn created_objects_and_server_errors_match_kubectl() {
    let env = Env::start();
    let dir = env.dir.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    write_fixtures(&dir);
    env.ok(&["create", "namespace", "gen"]);
    env.ok(&["create", "cronjob", "source", "--image=busybox", "--schedule=@daily", "-n", "gen"]);
    for (line, path) in REAL_CASES {
        let k_args = case(&line.replace("{N}", "kk"), &dir);
        let r_args = case(&line.replace("{N}", "rr"), &dir);
        let k = env.run(&k_args.iter().map(String::as_str).collect::<Vec<_>>());
        let r = rk(&env, &r_args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!((k.code, k.stderr.as_str()), (0, ""), "kubectl {k_args:?}");
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "rkubectl {r_args:?}");
        assert_eq!(r.stdout.replace("rr-", "kk-"), k.stdout, "{line}");
        let (kp, rp) = (path.replace("{N}", "kk"), path.replace("{N}", "rr"));
        assert_eq!(normalized(&env, &rp), normalized(&env, &kp), "{line}: rkubectl's object (left) vs kubectl's");
    }

    // Creating them again fails alike (each generator words it its own way), as do kinds this
    // server does not serve, missing namespaces and a Job from something not a CronJob.
    for (line, _) in REAL_CASES {
        let args = case(&line.replace("{N}", "kk"), &dir);
        let out = same(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.code, 1, "{line}: {}", out.stderr);
    }
    for line in [
        "create priorityclass kk-pc --value=5",
        "create quota kk-q --hard=pods=2 -n gen",
        "create serviceaccount x -n nope",
        "create configmap x --from-literal=a=b -n nope --dry-run=server",
        "create job x --from=cronjob/nope -n gen",
        "create job x --from=deployment/kk-dep -n gen",
        "create role x --verb=get --resource=nosuchthing -n gen",
    ] {
        let args = case(line, &dir);
        let out = same(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_ne!(out.code, 0, "{line}");
    }

    // A server-side dry run prints what the server would store, and stores nothing.
    let out = same(&env, &["create", "sa", "dry", "-n", "gen", "--dry-run=server"]);
    assert_eq!(out.stdout, "serviceaccount/dry created (server dry run)\n");
    let r =
        rk(&env, &["create", "service", "clusterip", "dry", "--tcp=80", "-n", "gen", "--dry-run=server", "-o", "json"]);
    let svc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((&svc["metadata"]["name"], &svc["spec"]["type"]), (&"dry".into(), &"ClusterIP".into()), "{svc}");
    assert_eq!(env.rest("/api/v1/namespaces/gen/serviceaccounts/dry").0, 404);
    assert_eq!(env.rest("/api/v1/namespaces/gen/services/dry").0, 404);
}

#[test]
fn create_token_issues_a_token_the_server_accepts() {
    let pki = TestPki::new().unwrap();
    let env = Env::start_secure(&pki, &["--authorization-mode", "Node,RBAC"]);
    env.ok(&["create", "namespace", "x"]);
    let out = rk(&env, &["create", "serviceaccount", "robot", "-n", "x"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "serviceaccount/robot created\n"), "{}", out.stderr);

    let out = rk(
        &env,
        &[
            "create",
            "token",
            "robot",
            "-n",
            "x",
            "--duration=20m",
            "--audience=https://kubernetes.default.svc.cluster.local",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.trim();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let config = pki.token_kubeconfig(&env.api.url(), "robot", token).unwrap();
    let who = env.run_as(&config, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!((who.code, who.stdout.as_str()), (0, "system:serviceaccount:x:robot"), "{}", who.stderr);
    // kubectl's --token flag takes it as well, over a kubeconfig whose own token is worthless.
    let bogus = pki.token_kubeconfig(&env.api.url(), "bogus", "not-a-token").unwrap();
    let whoami = ["--token", token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"];
    let who = env.run_as(&bogus, &whoami);
    assert_eq!((who.code, who.stdout.as_str()), (0, "system:serviceaccount:x:robot"), "{}", who.stderr);
    assert_ne!(env.run_as(&bogus, &whoami[2..]).code, 0, "the bogus token must not authenticate");

    // -o json prints the TokenRequest with the token in its status.
    let out = rk(&env, &["create", "token", "robot", "-n", "x", "-o", "json"]);
    let tr: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    assert!(tr["status"]["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{tr}");

    // Refusals, client-side and from the server, read as kubectl's.
    for line in [
        "create token",
        "create token a b",
        "create token robot -n x --bound-object-kind=Pod",
        "create token robot -n x --bound-object-kind=Foo --bound-object-name=p",
        "create token robot -n x --bound-object-name=p",
        "create token robot -n x --duration=-1s",
        "create token robot -n x --duration=1x",
        "create token missing -n x",
        "create token robot -n x --duration=5m",
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let out = same(&env, &args);
        assert_ne!(out.code, 0, "{line}");
    }
}
