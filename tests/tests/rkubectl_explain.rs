//! `rkubectl explain` against the real kubectl (v1.33) on the same rkube-apiserver: both read
//! the server's OpenAPI v3 documents, so stdout, stderr and the exit code must be byte for
//! byte the same, for resources, nested fields, maps, enums, `--recursive`, `--api-version`,
//! short names (with the ambiguity warning) and every error kubectl reports.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver --bins`.

mod support;

use support::rkubectl::*;
use support::*;

/// Runs `explain args` with both clients, asserts kubectl exits with `code`, and that rkubectl
/// prints the same bytes on both streams and exits the same way. Returns kubectl's stdout.
fn same(env: &Env, args: &[&str], code: i32) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let k = env.run(&all);
    let r = rk(env, &all);
    assert_eq!(k.code, code, "kubectl {all:?} exit code\nstdout: {}\nstderr: {}", k.stdout, k.stderr);
    assert_eq!(r.code, k.code, "rkubectl {all:?} exit code\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        k.stdout == r.stdout,
        "stdout of {all:?}\n--- kubectl\n{}--- rkubectl\n{}--- first difference at line {}",
        k.stdout,
        r.stdout,
        k.stdout.lines().zip(r.stdout.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1)
    );
    // rkubectl names itself where kubectl does in its hints.
    let r_stderr = r.stderr.replace("\"rkubectl api-resources\"", "\"kubectl api-resources\"");
    assert_eq!(k.stderr, r_stderr, "stderr of {all:?}");
    k.stdout
}

#[test]
fn explain_matches_kubectl_byte_for_byte() {
    let env = Env::start();

    // Resources and fields: GROUP only for named groups, wrapped descriptions, type names from
    // the referenced schemas, a field's own description before its type's.
    let pods = same(&env, &["pods"], 0);
    assert!(pods.starts_with("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n"), "{pods}");
    assert!(pods.contains("  spec\t<PodSpec>\n") && pods.ends_with("\n\n\n"), "{pods}");
    assert!(pods.lines().all(|l| l.len() <= 80 || !l.trim().contains(' ')), "unwrapped line in\n{pods}");
    let spec = same(&env, &["pod.spec"], 0);
    assert!(spec.contains("FIELD: spec <PodSpec>\n\n\nDESCRIPTION:\n"), "{spec}");
    let containers = same(&env, &["pods.spec.containers"], 0);
    assert!(containers.contains("FIELD: containers <[]Container>"), "{containers}");
    same(&env, &["pods.spec.restartPolicy"], 0);
    let strategy = same(&env, &["deployments.spec.strategy"], 0);
    assert!(strategy.starts_with("GROUP:      apps\nKIND:       Deployment\n"), "{strategy}");
    let data = same(&env, &["configmaps.data"], 0);
    assert!(data.contains("FIELD: data <map[string]string>"), "{data}");
    same(&env, &["jobs.spec.template.spec"], 0);
    // Multi-paragraph descriptions (tabs, blank lines, code blocks) through a map of $refs.
    let limits = same(&env, &["pods.spec.containers.resources.limits"], 0);
    assert!(limits.contains("<map[string]Quantity>"), "{limits}");
    same(&env, &["svc.spec.ports.targetPort"], 0);
    same(&env, &["pods.status.conditions.type"], 0);
    same(&env, &["po.metadata.name"], 0);
    same(&env, &["Pod.spec"], 0);
    same(&env, &["nodes"], 0);
    same(&env, &["hpa.spec"], 0);
    same(&env, &["cronjobs.spec.jobTemplate.spec.template.spec.containers"], 0);

    // Group-qualified names, a trailing dot, kubectl's lenient `..`.
    same(&env, &["deployments.apps.spec"], 0);
    same(&env, &["pods."], 0);
    same(&env, &["pods..spec"], 0);

    // --recursive: names and types only, nested by two spaces, cycles cut.
    let recursive = same(&env, &["deploy", "--recursive"], 0);
    assert!(recursive.contains("\n        containers\t<[]Container> -required-\n"), "{recursive}");
    same(&env, &["pods", "--recursive"], 0);
    same(&env, &["ingresses", "--recursive=true"], 0);

    // --api-version, good and bad.
    let cronjobs = same(&env, &["cronjobs", "--api-version=batch/v1"], 0);
    assert!(cronjobs.starts_with("GROUP:      batch\nKIND:       CronJob\nVERSION:    v1\n"), "{cronjobs}");
    same(&env, &["pods", "--api-version=batch/v1"], 1);
    same(&env, &["cronjobs", "--api-version=batch/v2"], 1);
    same(&env, &["pods", "--api-version=foo/bar/baz"], 1);

    // A short name two groups carry: the core one wins, with kubectl's warning.
    let events = same(&env, &["ev"], 0);
    assert!(events.starts_with("KIND:       Event\n"), "{events}");

    // Errors: the header is printed before a missing field is reported.
    let missing = same(&env, &["pods.spec.nosuchfield"], 1);
    assert_eq!(missing, "KIND:       Pod\nVERSION:    v1\n\n");
    same(&env, &["pods.nosuch.spec"], 1);
    same(&env, &["pods.spec.restartPolicy.foo"], 1);
    same(&env, &["pods.metadata.labels.foo"], 1);
    same(&env, &["nosuchthing"], 1);
    same(&env, &[".pods"], 1);
    same(&env, &["pods.spec[0]"], 1);
    same(&env, &["pods.spec.{a}"], 1);
    same(&env, &["pods", "--output=foo"], 1);
    same(&env, &["pods", "--output=plaintext-openapiv2"], 1);
    same(&env, &["pods", "svc"], 1);
    same(&env, &[], 1);
}
