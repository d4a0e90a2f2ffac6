//! The sidecar's TLS: libpq's sslmode meanings, certificate verification on request.

use std::path::Path;
use std::process::Command;

use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::Cluster;

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `name.crt`/`name.key`.
fn authority(dir: &Path, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
        dir,
    );
}

/// `server.crt`/`server.key` for localhost and 127.0.0.1, signed by authority `ca`.
fn server_certificate(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        dir,
    );
}

#[test]
fn exports_over_tls_and_verify_the_server_when_asked() {
    let cluster = Cluster::start();
    let certs = tempfile::tempdir().unwrap();
    authority(certs.path(), "ca");
    authority(certs.path(), "other");
    server_certificate(certs.path(), "ca");
    // The server's key must belong to the server's user and be private.
    let data = cluster.dir.join("data");
    for file in ["server.crt", "server.key"] {
        std::fs::copy(certs.path().join(file), data.join(file)).unwrap();
    }
    let _ = Command::new("chown")
        .args(["postgres:"])
        .arg(data.join("server.crt"))
        .arg(data.join("server.key"))
        .status();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let mut admin = cluster.superuser("postgres");
    for statement in [
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET log_connections = on",
        "ALTER SYSTEM SET log_min_messages = log",
        "SELECT pg_reload_conf()",
        "CREATE DATABASE app",
        "CREATE ROLE tls_auditor LOGIN PASSWORD 'pw' IN ROLE audit_admin",
    ] {
        admin
            .batch_execute(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    cluster
        .superuser("app")
        .batch_execute("CREATE EXTENSION audit_trail")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    let url = |host: &str, mode: &str| {
        format!(
            "postgresql://tls_auditor:pw@{host}:{}/app?sslmode={mode}",
            cluster.port
        )
    };
    let export = |db: String, root: Option<&Path>| {
        let mut cmd = command();
        cmd.args(["export", "--format", "jsonl", "--db", &db]);
        if let Some(root) = root {
            cmd.env("PGSSLROOTCERT", root);
        }
        run(&mut cmd)
    };
    // Encrypted without verification, as libpq's require.
    let out = export(url("127.0.0.1", "require"), None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Verified against the authority that signed the server's certificate, by name and by
    // address.
    for host in ["localhost", "127.0.0.1"] {
        let out = export(url(host, "verify-full"), Some(&certs.path().join("ca.crt")));
        assert_eq!(out.code, 0, "{host}: {}", out.stderr);
    }
    // Another root: the server is not trusted, one clear line, exit 1.
    let out = export(
        url("localhost", "verify-full"),
        Some(&certs.path().join("other.crt")),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("certificate"), "{}", out.stderr);
    assert!(!out.stderr.contains("pw@"), "{}", out.stderr);

    let log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap();
    let authorized: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized: user=tls_auditor"))
        .collect();
    assert!(authorized.len() >= 3, "{log}");
    assert!(
        authorized.iter().all(|l| l.contains("SSL enabled")),
        "{authorized:#?}"
    );
}
