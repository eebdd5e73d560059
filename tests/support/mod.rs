use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;
use voxtur::config::Settings;
use voxtur::server::Application;
use voxtur_core::auth::{ScopeSet, issue_api_key};
use voxtur_store::db::StatementCounter;

pub struct TestApp {
    pub address: String,
    /// An all-scopes key of the test's first workspace.
    pub key: String,
    pub workspace_id: Uuid,
    pub db: DatabaseConnection,
    pub statements: StatementCounter,
    /// Where the test's database is, for running the `voxtur` binary against it.
    pub database: voxtur::config::DatabaseSettings,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

/// The database settings for one test: a fresh SQLite file, or a fresh PostgreSQL schema.
async fn test_database() -> (Settings, Option<tempfile::TempDir>) {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.database.max_connections = 5;
    // Webhook delivery is set up once per process (its HTTP client and target policy), so
    // every test app has the same: local receivers allowed, a short timeout. The refusal of
    // private targets is tested against the binary (tests/webhooks.rs).
    settings.webhooks.allow_private_targets = true;
    settings.webhooks.timeout_secs = 1;
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let schema = format!("voxtur_t_{}", Uuid::new_v4().simple());
            let admin = Database::connect(&url)
                .await
                .expect("TEST_DATABASE_URL must be reachable");
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("create schema");
            admin.close().await.ok();
            settings.database.url = url;
            settings.database.schema = Some(schema);
            (settings, None)
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            settings.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            (settings, Some(dir))
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let (mut settings, dir) = test_database().await;
        adjust(&mut settings);
        let (db, _) = voxtur_store::db::connect(&settings.database).await.expect("connect");
        let database = settings.database.clone();
        voxtur_store::db::migrate(&db).await.expect("migrate");
        let app = Application::build(&settings).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let statements = app.statements();
        let app_db = app.db();
        tokio::spawn(app.run_until_stopped());
        let (workspace_id, key) = new_workspace(&db, "Test workspace", &ScopeSet::all()).await;
        TestApp {
            address,
            key,
            workspace_id,
            db: app_db,
            statements,
            database,
            // Idle connections are dropped before the server's keep-alive (5 s) closes them, so
            // a request never goes out on a connection the server is closing (a reset, seen on
            // a loaded machine).
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("HTTP client"),
            _dir: dir,
        }
    }

    /// A second server over this test's database, as behind a load balancer; its address.
    pub async fn another_server(&self) -> String {
        self.another_server_with(|_| {}).await
    }

    /// [`TestApp::another_server`], with its settings adjusted.
    pub async fn another_server_with(&self, adjust: impl FnOnce(&mut Settings)) -> String {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.server.workers = 1;
        settings.database = self.database.clone();
        adjust(&mut settings);
        let app = Application::build(&settings).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    /// Starts `voxtur serve --no-workers` on this test's database with the default settings
    /// and the environment `env`, on its own port; returns the process and its address once
    /// it listens.
    pub fn binary(&self, env: &[(&str, &str)]) -> (std::process::Child, String) {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_voxtur"));
        command
            .args(["serve", "--no-workers"])
            .env_remove("DATABASE_URL")
            .env("VOXTUR__DATABASE__URL", &self.database.url)
            .env("VOXTUR__LOG__FORMAT", "json")
            .env("VOXTUR__SERVER__PORT", "0")
            .env("VOXTUR__SERVER__WORKERS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(schema) = &self.database.schema {
            command.env("VOXTUR__DATABASE__SCHEMA", schema);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start voxtur");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let port = loop {
            let line = lines.next().expect("the server started").expect("log line");
            if line.contains("GraphiQL at /graphql") {
                let log: Value = serde_json::from_str(&line).expect("JSON log");
                break log["fields"]["port"].as_u64().expect("port");
            }
        };
        // The rest of its log is drained, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        (child, format!("http://127.0.0.1:{port}"))
    }

    /// Runs the `voxtur` binary on this test's database; returns success, stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_voxtur"));
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env("VOXTUR__DATABASE__URL", &self.database.url)
            .env("VOXTUR__LOG__FILTER", "warn");
        if let Some(schema) = &self.database.schema {
            command.env("VOXTUR__DATABASE__SCHEMA", schema);
        }
        let output = command.output().expect("run voxtur");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Another tenant in the same database, with a key of the given scopes.
    pub async fn other_workspace(&self, scopes: &str) -> String {
        new_workspace(&self.db, "Other workspace", &ScopeSet::parse(scopes).expect("scopes"))
            .await
            .1
    }

    /// A key of this test's workspace with the given scopes.
    pub async fn key_with(&self, scopes: &str) -> String {
        issue_api_key(
            &self.db,
            self.workspace_id,
            "test",
            &ScopeSet::parse(scopes).expect("scopes"),
        )
        .await
        .expect("issue key")
        .secret
    }

    pub async fn post(&self, key: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    /// Runs a GraphQL operation with `key`; returns the HTTP status and the whole response.
    pub async fn gql_as(&self, key: Option<&str>, query: &str, variables: Value) -> (StatusCode, Value) {
        self.post(
            key,
            serde_json::to_vec(&json!({ "query": query, "variables": variables })).expect("json"),
        )
        .await
    }

    /// Runs a GraphQL operation with the admin key and returns `data`, failing on any error.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql_as(Some(&self.key), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs a GraphQL operation expected to fail; returns its first error's code.
    pub async fn gql_error(&self, query: &str, variables: Value) -> (String, String) {
        let (_, body) = self.gql_as(Some(&self.key), query, variables).await;
        let error = &body["errors"][0];
        assert!(!error.is_null(), "expected an error: {body}");
        (
            error["extensions"]["code"].as_str().unwrap_or_default().to_owned(),
            error["message"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// A fresh write key of this workspace.
    pub async fn write_key(&self) -> String {
        let data = self
            .gql(r#"mutation { writeKeyCreate(name: "site") { secret } }"#, json!({}))
            .await;
        data["writeKeyCreate"]["secret"].as_str().expect("secret").to_owned()
    }

    /// POSTs raw bytes to a tracking endpoint (`/v1/...`) with the write key as basic-auth user.
    pub async fn track_raw(&self, path: &str, write_key: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .basic_auth(write_key, Some(""))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    pub async fn track(&self, path: &str, write_key: &str, body: Value) -> (StatusCode, Value) {
        self.track_raw(path, write_key, serde_json::to_vec(&body).expect("json"))
            .await
    }

    pub async fn create_contact(&self, input: Value) -> Value {
        let data = self
            .gql(
                "mutation($input: ContactCreateInput!) { contactCreate(input: $input) { contact { id email } userErrors { code message field } } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(data["contactCreate"]["userErrors"], json!([]), "{data}");
        data["contactCreate"]["contact"].clone()
    }

    pub async fn create_company(&self, input: Value) -> String {
        let data = self
            .gql(
                "mutation($input: CompanyCreateInput!) { companyCreate(input: $input) { company { id } userErrors { code message } } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(data["companyCreate"]["userErrors"], json!([]), "{data}");
        data["companyCreate"]["company"]["id"].as_str().expect("id").to_owned()
    }

    pub async fn contact_count(&self) -> i64 {
        self.gql("{ contacts { totalCount } }", json!({})).await["contacts"]["totalCount"]
            .as_i64()
            .expect("count")
    }
}

async fn new_workspace(db: &DatabaseConnection, name: &str, scopes: &ScopeSet) -> (Uuid, String) {
    let ws = voxtur_core::workspaces::create_workspace(db, name)
        .await
        .expect("workspace");
    let key = issue_api_key(db, ws.id, "test", scopes).await.expect("key");
    (ws.id, key.secret)
}

/// The `userErrors` codes of a payload.
impl TestApp {
    /// Checks that the event tallies every write kept in step equal tallies computed afresh from
    /// the events (`tally::rebuild`), whatever the test did before: ingestion with retries and
    /// merges, forms, deletions.
    pub async fn assert_tallies_match_events(&self) {
        let read = || async {
            let sql = match self.db.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    "SELECT contact_id::text, event_type, total::text, last_at::text, recent::text \
                     FROM event_tally WHERE workspace_id = $1 ORDER BY 1, 2"
                }
                _ => {
                    "SELECT hex(contact_id), event_type, CAST(total AS TEXT), last_at, recent \
                     FROM event_tally WHERE workspace_id = ? ORDER BY 1, 2"
                }
            };
            let rows = self
                .db
                .query_all_raw(sea_orm::Statement::from_sql_and_values(
                    self.db.get_database_backend(),
                    sql,
                    [self.workspace_id.into()],
                ))
                .await
                .expect("read tallies");
            rows.iter()
                .map(|r| {
                    (0..5)
                        .map(|i| r.try_get_by_index::<String>(i).unwrap())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        let kept = read().await;
        voxtur_core::events::tally::rebuild(&self.db, self.workspace_id)
            .await
            .expect("rebuild tallies");
        let computed = read().await;
        assert!(!computed.is_empty(), "the test recorded no events");
        assert_eq!(kept, computed, "tallies kept at each write differ from the events' own");
    }
}

pub fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
