//! The `voxtur` binary itself: first start, demo data, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn voxtur(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxtur"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("VOXTUR__LOG__FORMAT", "json")
        .env("VOXTUR__SERVER__PORT", "0")
        .env("VOXTUR__SERVER__WORKERS", "1");
    command
}

#[test]
fn serve_prints_a_key_once_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = voxtur(dir.path())
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the JSON log line that says the server is listening.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let port = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let line = lines.next().expect("log line").unwrap();
        if line.contains("GraphiQL at /graphql") {
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
            break log["fields"]["port"].as_u64().expect("port");
        }
    };
    let health = http_get::healthz(port);
    assert_eq!(health, 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");

    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout.matches("Created workspace \"Default\"").count(), 1, "{stdout}");
    assert!(stdout.contains("Created workspace \"Demo\" ("), "{stdout}");
    // Each key printed once: the first start's and the demo's.
    assert_eq!(stdout.matches("vxk_").count(), 2, "{stdout}");

    // `workspace create` prints an id that `api-key create` accepts; the key works.
    let output = voxtur(dir.path())
        .args(["workspace", "create", "Acme"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let workspace_id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(uuid::Uuid::parse_str(&workspace_id).is_ok(), "{workspace_id}");
    let output = voxtur(dir.path())
        .args([
            "api-key",
            "create",
            "--workspace",
            &workspace_id,
            "--scopes",
            "contacts:read,contacts:write",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().trim().starts_with("vxk_"));
    let output = voxtur(dir.path())
        .args([
            "api-key",
            "create",
            "--workspace",
            &workspace_id,
            "--scopes",
            "contacts:delete",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scope `contacts:delete`"));

    // Bad CLI input is a clear error and a failing exit status.
    let output = voxtur(dir.path())
        .args(["api-key", "create", "--workspace", "nope", "--scopes", "all"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a workspace id"));
}

mod http_get {
    /// A minimal blocking GET of /healthz, so this test needs no async runtime.
    pub fn healthz(port: u64) -> u16 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

/// Operators: a misspelt setting is refused with the closest name, logs written to a pipe carry
/// no colour codes, and the workspaces can be listed.
#[test]
fn settings_are_checked_logs_are_plain_in_a_pipe_and_workspaces_list() {
    let dir = tempfile::tempdir().unwrap();
    let output = voxtur(dir.path())
        .env("VOXTUR__SERVER__PROT", "1")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown setting `server.prot`") && stderr.contains("did you mean `server.port`?"),
        "{stderr}"
    );

    let output = voxtur(dir.path())
        .env("VOXTUR__LOG__FORMAT", "pretty")
        .env("VOXTUR__LOG__FILTER", "debug")
        .args(["workspace", "create", "Acme EU"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.is_empty(), "debug logs expected");
    assert!(!stderr.contains('\u{1b}'), "colour codes in a pipe: {stderr}");
    let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let output = voxtur(dir.path()).args(["workspace", "list"]).output().unwrap();
    assert!(output.status.success());
    let listed = String::from_utf8(output.stdout).unwrap();
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.ends_with("\tAcme EU"), "{line}");
}

/// On PostgreSQL, a schema named in the settings is made when missing (the PostgreSQL pass).
#[test]
fn a_missing_postgresql_schema_is_made() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        return;
    };
    if !url.starts_with("postgres") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("voxtur_t_{}", uuid::Uuid::new_v4().simple());
    let output = voxtur(dir.path())
        .args(["--database-url", &url, "migrate"])
        .env("VOXTUR__DATABASE__SCHEMA", &schema)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = voxtur(dir.path())
        .args(["--database-url", &url, "workspace", "list"])
        .env("VOXTUR__DATABASE__SCHEMA", &schema)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
