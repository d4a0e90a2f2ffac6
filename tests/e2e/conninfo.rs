//! Where the `audit-trail` commands connect when `--db` leaves things out, and what they say
//! when it cannot be read: libpq's rules, one line, exit code 2.

use std::process::Command;

use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::TestDb;

/// The operating system's name for the user running the tests, as `id -un` gives it.
fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!name.is_empty(), "id -un printed nothing");
    name
}

/// `audit-trail ARGS` with no user anywhere in the environment: neither `PGUSER` (which
/// `command()` removes) nor `USER`/`LOGNAME`, which libpq does not read either.
fn run_without_user(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command();
    cmd.env_remove("USER").env_remove("LOGNAME").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn a_malformed_connection_url_is_reported_as_malformed() {
    for url in [
        "postgresql://user@host:notaport/db",
        "postgres://[",
        "postgresql://host:notaport/db",
    ] {
        for args in [
            vec!["export", "--db", url],
            vec![
                "follow",
                "--consumer",
                "c",
                "--once",
                "--stdout",
                "--db",
                url,
            ],
            vec!["serve", "--db", url],
        ] {
            let r = run_without_user(&args, &[]);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains("--db: malformed connection URL: "),
                "{args:?}: {}",
                r.stderr
            );
            assert!(!r.stderr.contains("no database user"), "{}", r.stderr);
        }
        // The same from DATABASE_URL, named as such.
        let r = run_without_user(&["export"], &[("DATABASE_URL", url)]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("DATABASE_URL: malformed connection URL: "),
            "{}",
            r.stderr
        );
    }
    let r = run_without_user(&["export", "--db", "port=notanumber"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--db: malformed connection string: "),
        "{}",
        r.stderr
    );
    // The password of a malformed URL is never echoed.
    let r = run_without_user(
        &[
            "export",
            "--db",
            "postgresql://ann:s3cret-pw@host:notaport/db",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("s3cret-pw"), "{}", r.stderr);
}

#[test]
fn without_a_user_the_cli_connects_as_the_operating_system_user_as_libpq_does() {
    let db = TestDb::new();
    let me = os_user();
    // The role libpq would log in as; created if missing (roles are cluster-wide, and when
    // the tests do not run as root it is the cluster's own superuser, which exists).
    db.client()
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{me}') THEN
                 CREATE ROLE \"{me}\" LOGIN;
               END IF;
             END $$;
             GRANT audit_admin TO \"{me}\";"
        ))
        .expect("the operating system user's role");
    let marker = "__no_user__";
    let without_user = db.conninfo(marker).replace(&format!(" user={marker}"), "");
    assert!(!without_user.contains("user="), "{without_user}");

    let r = run_without_user(&["export", "--db", &without_user], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recorded: String = db
        .client()
        .query_one(
            "SELECT db_user FROM audit.events WHERE entity = 'audit_log' AND action = 'export'
              ORDER BY id DESC LIMIT 1",
            &[],
        )
        .expect("the export event")
        .get(0);
    assert_eq!(recorded, me);
}

/// A service's password lives in a file of its own (`PGPASSFILE`, libpq's format), never in
/// its configuration: the right line is used, and a file others may read is refused by name
/// instead of being skipped in silence (which would leave only a failed login to explain).
#[test]
fn the_password_comes_from_pgpassfile_and_a_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new();
    let role = db.create_role(
        "passfile",
        "LOGIN PASSWORD 'from-the-file' IN ROLE audit_admin",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pgpass");
    std::fs::write(
        &file,
        format!(
            "# the first line that matches wins\n\
             127.0.0.1:{port}:other_db:*:wrong\n\
             127.0.0.1:{port}:{db}:{role}:from-the-file\n\
             *:*:*:*:wrong-too\n",
            port = db.cluster.port,
            db = db.name
        ),
    )
    .expect("write the password file");
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname={} user={role}",
        db.cluster.port, db.name
    );
    let export = |mode: u32| {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        run(command()
            .args(["export", "--db", &conninfo])
            .env("PGPASSFILE", &file))
    };
    let ok = export(0o600);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.starts_with("id,"), "{}", ok.stdout);
    let refused = export(0o644);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("PGPASSFILE") && refused.stderr.contains("mode 0644"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("from-the-file"),
        "{}",
        refused.stderr
    );
    // Without it, no password: the login fails.
    let none = run(command().args(["export", "--db", &conninfo]));
    assert_ne!(none.code, 0, "{}", none.stderr);
}
