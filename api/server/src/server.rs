//! HTTP: a thin actix-web layer around the schema. `/graphql` (GET GraphiQL, POST API),
//! `/healthz`, `/readyz`; request ids, a body size limit, graceful shutdown.

use crate::config::Settings;
use crate::http::{AppState, error_response};
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use std::net::TcpListener;
use std::sync::Arc;
use tracing_actix_web::{RequestId, TracingLogger};
use voxtur_core::auth::{PrincipalCache, authenticate};
use voxtur_core::db::{self, StatementCounter};
use voxtur_core::error::ApiError;
use voxtur_core::jobs::worker::{WorkerSettings, Workers};
use voxtur_graphql::loaders::Loaders;
use voxtur_store::rate_limit::buckets::Charge;

/// A built, bound, not yet running server. Binding happens in `build`, so port 0 works for tests.
pub struct Application {
    port: u16,
    server: Server,
    statements: StatementCounter,
    db: DatabaseConnection,
    principals: Arc<PrincipalCache>,
    /// The job workers run beside the API, on a pool of their own (no request deadline); none
    /// with `serve --no-workers`.
    workers: Option<(DatabaseConnection, WorkerSettings)>,
    shutdown_timeout: std::time::Duration,
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Application, StartError> {
        // PostgreSQL cancels a request's statement once the request is past its deadline (at
        // least a second, so a tiny deadline cannot cancel the authentication it starts with).
        let mut database = settings.database.clone();
        database.statement_timeout = Some(std::time::Duration::from_millis(
            settings.limits.request_timeout_ms.max(1_000),
        ));
        let (db, statements) = db::connect(&database).await?;
        let pending = db::pending_migrations(&db).await?;
        if pending > 0 {
            return Err(StartError::Pending(pending));
        }
        voxtur_core::jobs::set_own_lease(std::time::Duration::from_secs(settings.jobs.lease_secs.max(1)));
        crate::outbound::HttpTransport::install(&settings.webhooks);
        crate::http::metrics::handle();
        let workers = if settings.server.run_jobs {
            Some((connect_workers(settings).await?, settings.jobs.clone()))
        } else {
            None
        };
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
        let port = listener.local_addr()?.port();
        let ingestor = web::Data::new(voxtur_core::events::ingest::Ingestor::new(db.clone()));
        let principals = Arc::new(PrincipalCache::default());
        let state = web::Data::new(AppState {
            schemas: voxtur_graphql::build(db.clone(), principals.clone(), &settings.graphql),
            db: db.clone(),
            principals: principals.clone(),
            parsed: Default::default(),
            max_body_bytes: settings.server.max_body_bytes,
            limits: settings.limits.clone(),
            limiter: Arc::new(voxtur_store::rate_limit::RateLimiter::new(db.clone())),
            metrics: settings.metrics.clone(),
            cost_buckets: voxtur_store::rate_limit::buckets::Buckets::new(
                db.clone(),
                settings.limits.query_cost_per_second,
                settings.limits.query_cost_capacity,
            ),
        });
        let mut server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(state.clone())
                .app_data(ingestor.clone())
                .wrap(from_fn(crate::http::metrics::count_requests))
                .wrap(from_fn(request_id_header))
                .wrap(TracingLogger::default())
                .route("/graphql", web::post().to(graphql_post))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .configure(crate::http::graphiql::routes)
                .configure(crate::http::events::routes)
                .configure(crate::http::web::routes)
                .configure(crate::http::exports::routes)
                .configure(crate::http::imports::routes)
                .configure(crate::http::metrics::routes)
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            statements,
            db,
            principals,
            workers,
            shutdown_timeout: std::time::Duration::from_secs(settings.server.shutdown_timeout_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Statements run so far on this server's pool.
    pub fn statements(&self) -> StatementCounter {
        self.statements.clone()
    }

    pub fn db(&self) -> DatabaseConnection {
        self.db.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM / SIGINT (actix handles both), letting in-flight requests finish,
    /// with the job workers beside it (which then finish their jobs or give them back). API keys
    /// are cached only while this runs (see [`PrincipalCache`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let revocations = tokio::spawn(self.principals.clone().follow_revocations(self.db.clone()));
        let checkpoints = tokio::spawn(voxtur_core::db::checkpoint_continuously(self.db.clone()));
        let workers = self.workers.map(|(db, settings)| Workers::start(db, settings));
        let result = self.server.await;
        if let Some(workers) = workers {
            workers.stop(self.shutdown_timeout).await;
        }
        checkpoints.abort();
        revocations.abort();
        result
    }
}

/// The job workers' own pool: their statements run as long as their job needs (a job has its
/// own timeout), and background work never takes the API's connections.
pub async fn connect_workers(settings: &Settings) -> Result<DatabaseConnection, StartError> {
    let mut database = settings.database.clone();
    database.statement_timeout = None;
    database.max_connections = (settings.jobs.concurrency as u32 + 4).min(database.max_connections.max(4));
    let (db, _) = db::connect(&database).await?;
    Ok(db)
}

/// Runs only the job workers (`voxtur worker`) until SIGTERM / SIGINT, then lets running jobs
/// finish for the shutdown timeout and gives back the rest.
pub async fn run_workers(settings: &Settings) -> Result<(), StartError> {
    crate::outbound::HttpTransport::install(&settings.webhooks);
    let db = connect_workers(settings).await?;
    let pending = db::pending_migrations(&db).await?;
    if pending > 0 {
        return Err(StartError::Pending(pending));
    }
    let checkpoints = tokio::spawn(voxtur_core::db::checkpoint_continuously(db.clone()));
    let workers = Workers::start(db, settings.jobs.clone());
    shutdown_signal().await;
    tracing::info!("stopping the workers");
    workers
        .stop(std::time::Duration::from_secs(settings.server.shutdown_timeout_secs))
        .await;
    checkpoints.abort();
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0} migration(s) pending: run `voxtur migrate` first")]
    Pending(usize),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    let mut response = next.call(req).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

async fn graphql_post(req: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let limit = state.max_body_bytes;
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            &format!("request body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return too_large();
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "could not read the request body",
            );
        };
        if body.len() + chunk.len() > limit {
            return too_large();
        }
        body.extend_from_slice(&chunk);
    }

    if let Some(retry_after) = crate::http::auth_refused(&req, &state) {
        return crate::http::too_many(retry_after, "too many failed authentications from this address");
    }
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let principal = match authenticate(&state.db, &state.principals, authorization).await {
        Ok(principal) => principal,
        Err(ApiError::Unauthenticated) => {
            if let Some(retry_after) = crate::http::count_failed_auth(&req, &state).await {
                return crate::http::too_many(retry_after, "too many failed authentications from this address");
            }
            return error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "invalid, unknown or revoked credentials",
            );
        }
        Err(error) => {
            tracing::error!(?error, "authentication failed");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error");
        }
    };

    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("body is not a GraphQL request in JSON: {error}"),
            );
        }
    };
    let mut request = request;
    let prepared = state.parsed.prepare(&mut request);
    let per_item = prepared
        .as_ref()
        .map(|p| items_checked_one_by_one(&p.document))
        .unwrap_or_default();
    if let Some(at) = nul_in_request(&request, &per_item) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            &format!("{at} contains a NUL character, which no text may hold"),
        );
    }
    if let Some(prepared) = &prepared
        && prepared.cost.root_fields > voxtur_graphql::cost::MAX_ROOT_FIELDS
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            &format!(
                "the operation has {} root fields (aliases count); at most {}: split it",
                prepared.cost.root_fields,
                voxtur_graphql::cost::MAX_ROOT_FIELDS
            ),
        );
    }
    // Metered: the key, what the request asked for, and what its bucket answered.
    let metered = match (&principal, prepared) {
        (Some(principal), Some(prepared)) if state.limits.query_cost_per_second > 0 => {
            let key = principal.credential.id();
            let requested = prepared.cost.points;
            let charge = state.cost_buckets.charge(key, requested).await;
            if let Charge::Refused { wait, remaining } = charge {
                let mut response = crate::http::too_many(
                    wait,
                    &format!(
                        "this key's query budget is spent; {requested} points fit in {:.1} s",
                        wait.as_secs_f64()
                    ),
                );
                response.headers_mut().insert(
                    HeaderName::from_static("x-cost-remaining"),
                    HeaderValue::from(remaining),
                );
                return response;
            }
            // The actual cost is priced after the run, from the variables the run consumes.
            let operation = request.operation_name.clone();
            let variables = request.variables.clone();
            Some((key, requested, prepared.document, operation, variables))
        }
        _ => None,
    };
    if let Some(principal) = principal {
        request = request
            .data(Loaders::new(state.db.clone(), principal.workspace_id))
            .data(principal);
    }
    let schema = state.schemas.for_request(&mut request);
    let deadline = std::time::Duration::from_millis(state.limits.request_timeout_ms.max(1));
    let executed = tokio::time::timeout(deadline, schema.execute(request)).await;
    let timed_out = executed.is_err();
    let mut response = match executed {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(ms = deadline.as_millis() as u64, "request timed out");
            let mut error = async_graphql::ServerError::new(
                format!(
                    "the request ran longer than {} ms; ask for less (smaller pages, fewer fields)",
                    deadline.as_millis()
                ),
                None,
            );
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "TIMEOUT");
            async_graphql::Response::from_errors(vec![error])
        }
    };
    if let Some((key, requested, document, operation, variables)) = metered {
        // A request that ran out of time is charged what it asked for: its work was done.
        let actual = if timed_out {
            requested
        } else {
            voxtur_graphql::cost::actual(&document, operation.as_deref(), &variables, &response.data, requested)
        };
        let (remaining, empty_in) = state.cost_buckets.settle(key, requested, actual);
        // What this request cost and what the key has left (GitHub's and Shopify's shape).
        let reset_at = chrono::Utc::now() + chrono::Duration::from_std(empty_in).unwrap_or_default();
        let cost = async_graphql::indexmap::IndexMap::from([
            (
                async_graphql::Name::new("requested"),
                async_graphql::Value::from(requested),
            ),
            (async_graphql::Name::new("actual"), async_graphql::Value::from(actual)),
            (
                async_graphql::Name::new("remaining"),
                async_graphql::Value::from(remaining),
            ),
            (
                async_graphql::Name::new("resetAt"),
                async_graphql::Value::from(reset_at.to_rfc3339()),
            ),
        ]);
        response
            .extensions
            .insert("cost".into(), async_graphql::Value::Object(cost));
    }
    voxtur_graphql::errors::set_codes(&mut response);
    for error in &mut response.errors {
        // Parse, validation, limit and input-coercion errors come from the GraphQL engine
        // without a code; they are all the caller's to fix.
        let extensions = error.extensions.get_or_insert_with(Default::default);
        match extensions.get("code") {
            None => extensions.set("code", "BAD_USER_INPUT"),
            // The request id ties the answer to the log line that says what went wrong.
            Some(async_graphql::Value::String(code)) if code == "INTERNAL" => {
                if let Some(id) = req.extensions().get::<RequestId>() {
                    extensions.set("requestId", id.to_string());
                }
            }
            Some(_) => {}
        }
    }
    HttpResponse::Ok().json(response)
}

/// The variables given as the `inputs` of a bulk mutation (`contactsUpsert(inputs: $items)`):
/// the domain checks each item's texts and reports a bad one at its index while the others
/// are saved, so a NUL there must reach it rather than sink the whole call here.
fn items_checked_one_by_one(document: &async_graphql::parser::types::ExecutableDocument) -> Vec<async_graphql::Name> {
    use async_graphql::parser::types::{OperationType, Selection};
    document
        .operations
        .iter()
        .filter(|(_, operation)| operation.node.ty == OperationType::Mutation)
        .flat_map(|(_, operation)| operation.node.selection_set.node.items.iter())
        .filter_map(|item| match &item.node {
            // The one variable the argument is, if it is one (its name comes out as the error).
            Selection::Field(field) => field
                .node
                .get_argument("inputs")?
                .node
                .clone()
                .into_const_with(Err)
                .err(),
            _ => None,
        })
        .collect()
}

/// Where a request holds a NUL character (PostgreSQL can store none), if anywhere: in the
/// query's text (raw, or written as GraphQL's `\u0000` escape) or in a variable, except those
/// whose items are checked one by one.
fn nul_in_request(request: &async_graphql::Request, per_item: &[async_graphql::Name]) -> Option<String> {
    fn walk(value: &async_graphql::Value, path: &mut Vec<String>) -> bool {
        use async_graphql::Value;
        match value {
            Value::String(text) => text.contains('\0'),
            Value::List(items) => items.iter().enumerate().any(|(i, item)| {
                path.push(i.to_string());
                let found = walk(item, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::Object(fields) => fields.iter().any(|(name, item)| {
                path.push(name.to_string());
                let found = name.contains('\0') || walk(item, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    if request.query.contains('\0') || request.query.contains("\\u0000") {
        return Some("the query".into());
    }
    let mut path = vec!["variables".to_owned()];
    for (name, value) in request.variables.iter() {
        if per_item.contains(name) {
            continue;
        }
        path.push(name.to_string());
        if walk(value, &mut path) {
            return Some(path.join("."));
        }
        path.pop();
    }
    None
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match db::ping(&state.db).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(error) => {
            tracing::warn!(%error, "database not reachable");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "database unreachable" }))
        }
    }
}
