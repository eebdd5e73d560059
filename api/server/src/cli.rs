//! The `voxtur` command line.

use crate::config::Settings;
use crate::server::Application;
use crate::telemetry;
use clap::{Parser, Subcommand};
use entities::workspace;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use std::path::PathBuf;
use std::process::ExitCode;
use uuid::Uuid;
use voxtur_core::auth::{ScopeSet, issue_api_key};
use voxtur_core::ids::{NodeKind, decode_as};
use voxtur_core::{db, workspaces};
use voxtur_demo as demo;
use voxtur_demo::generate::GenerateOptions;

const CONFIG_HELP: &str = "\
Configuration, later sources overriding earlier ones:
  1. built-in defaults (SQLite file ./voxtur.db, 127.0.0.1:8080)
  2. a TOML file: --config FILE, or ./voxtur.toml when present
  3. environment: VOXTUR__<SECTION>__<KEY>, e.g.
       VOXTUR__DATABASE__URL            sqlite://voxtur.db?mode=rwc | postgres://user@host/db
       VOXTUR__DATABASE__SCHEMA         PostgreSQL schema (search_path)
       VOXTUR__DATABASE__MAX_CONNECTIONS
       VOXTUR__SERVER__HOST, VOXTUR__SERVER__PORT, VOXTUR__SERVER__WORKERS
       VOXTUR__SERVER__MAX_BODY_BYTES   largest request body (default 1048576)
       VOXTUR__SERVER__SHUTDOWN_TIMEOUT_SECS
       VOXTUR__GRAPHQL__MAX_DEPTH, VOXTUR__GRAPHQL__MAX_COMPLEXITY
       VOXTUR__LIMITS__FORM_SUBMISSIONS_PER_MINUTE, VOXTUR__LIMITS__FAILED_AUTH_PER_MINUTE,
       VOXTUR__LIMITS__TRACKING_CALLS_PER_MINUTE   rate limits (0: off)
       VOXTUR__LOG__FORMAT              pretty | json
       VOXTUR__LOG__FILTER              e.g. info,voxtur=debug (RUST_LOG overrides)
     and DATABASE_URL, the conventional name, for the database URL (it wins over
     VOXTUR__DATABASE__URL)
  4. command-line flags (--database-url, --host, --port)
An unknown setting (a misspelt key in the file or a VOXTUR__ variable) stops the start with
its name and the closest known one.";

#[derive(Parser)]
#[command(name = "voxtur", version, about = "Voxtur marketing-CRM GraphQL API server", after_long_help = CONFIG_HELP)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "VOXTUR_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (overrides configuration and DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve the API (the default command). On first start, creates a
    /// workspace and prints an admin API key once.
    Serve {
        /// Interface to listen on.
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on.
        #[arg(long)]
        port: Option<u16>,
        /// Also create a demo workspace full of sample data (once) and print its API key.
        #[arg(long)]
        demo: bool,
        /// Serve the API only; background jobs are left to `voxtur worker` processes.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the background job workers only (beside API servers started with --no-workers).
    Worker,
    /// Inspect and steer background jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL), or write it to a file.
    ExportSchema {
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Import contacts.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Manage segments.
    Segment {
        #[command(subcommand)]
        command: SegmentCommand,
    },
    /// Create a demo workspace with sample companies and contacts, and print its API key.
    #[command(args_conflicts_with_subcommands = true)]
    Demo {
        /// Number of contacts.
        #[arg(long, default_value_t = 500)]
        contacts: usize,
        #[command(subcommand)]
        command: Option<DemoCommand>,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List jobs, newest first: id, state, kind, queue, attempts, due time, last error.
    List {
        /// Only this state: scheduled, available, running, completed, discarded, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only this kind, e.g. segments.export.
        #[arg(long)]
        kind: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this workspace's (global id or UUID); `system` for the system's own jobs.
        #[arg(long)]
        workspace: Option<String>,
        /// How many, at most.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Run a discarded or cancelled job again, from its first attempt.
    Retry {
        /// The job's id (UUID or global id).
        id: String,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// The job's id (UUID or global id).
        id: String,
    },
}

#[derive(Subcommand)]
enum ContactsCommand {
    /// Import contacts from a CSV file (UTF-8, with or without a BOM; `,`, `;` or tab found from
    /// the header), matched on e-mail, with a progress bar on stderr and a report of the rows
    /// that were not imported.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The workspace (global id or UUID).
        #[arg(long)]
        workspace: String,
        /// Columns and their fields, e.g. `--map "E-Mail=email,Vorname=firstName,Plan=custom:plan"`;
        /// fields: email, firstName, lastName, phone, company, lifecycleStage, tags, source,
        /// consent:<channel>, custom:<key>. Without it, the mapping the header suggests.
        #[arg(long)]
        map: Option<String>,
        /// A row whose e-mail is known: update the contact, or skip the row.
        #[arg(long, value_parser = ["update", "skip"], default_value = "update")]
        on_duplicate: String,
        /// Check and count every row, save nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SegmentCommand {
    /// Re-evaluate dynamic segments for every contact (repair), and print who entered and left.
    /// With --workspace, the workspace's event tallies are first recomputed from its events.
    Rebuild {
        /// Segment ids (global ids or UUIDs); none with --workspace for all of its segments.
        ids: Vec<String>,
        /// Every dynamic segment of this workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Write a segment's members as CSV, with a progress bar on stderr.
    Export {
        /// The segment's id (global id or UUID).
        id: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Start with a UTF-8 byte-order mark, for Excel.
        #[arg(long)]
        bom: bool,
    },
}

#[derive(Subcommand)]
enum DemoCommand {
    /// Generate a large, realistic, deterministic workspace for benchmarks (bulk-loaded: COPY on
    /// PostgreSQL), and print its API key and write key.
    Generate {
        /// Number of contacts.
        #[arg(long, default_value_t = 10_000)]
        contacts: u64,
        /// Mean events per contact (activity is skewed: most contacts are quiet, a few very busy).
        #[arg(long, default_value_t = 10.0)]
        events_per_contact: f64,
        /// Seed: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Last day of the two years of history (YYYY-MM-DD); default today.
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
        /// Name of the new workspace.
        #[arg(long, default_value = "Generated")]
        name: String,
        /// Print the summary as JSON (keys included) instead of text; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace and print its id.
    Create {
        /// Name of the workspace.
        name: String,
    },
    /// List the workspaces: id, creation time and name, oldest first.
    List,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key and print its secret (shown once).
    Create {
        /// Workspace id (as printed by `workspace create`, raw UUID or global id).
        #[arg(long)]
        workspace: String,
        /// Comma-separated scopes, e.g. contacts:read,contacts:write (or `all`).
        #[arg(long)]
        scopes: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = cli.database_url {
        settings.database.url = url;
    }
    telemetry::init(&settings.log);
    let result = actix_web::rt::System::new().block_on(run(cli.command, settings));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn jobs_command(db: &DatabaseConnection, command: JobsCommand) -> Result<(), String> {
    use entities::job;
    use voxtur_core::jobs::{self, State};
    let job_id = |id: &str| {
        uuid::Uuid::parse_str(id)
            .ok()
            .or_else(|| voxtur_core::ids::decode_as(id, voxtur_core::ids::NodeKind::Job))
            .ok_or_else(|| format!("`{id}` is not a job id"))
    };
    let workspace_of = |id: uuid::Uuid| async move {
        job::Entity::find_by_id(id)
            .one(db)
            .await
            .map_err(|e| e.to_string())?
            .map(|job| job.workspace_id)
            .ok_or_else(|| format!("no job {id}"))
    };
    let show = |outcome: voxtur_core::errors::MutationResult<jobs::Job>| match outcome {
        Ok(job) => {
            println!("{} {}", job.id, job.state);
            Ok(())
        }
        Err(voxtur_core::errors::MutationError::Invalid(errors)) => {
            Err(errors.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; "))
        }
        Err(voxtur_core::errors::MutationError::Api(e)) => Err(e.for_operator()),
    };
    match command {
        JobsCommand::List {
            state,
            kind,
            queue,
            workspace,
            limit,
        } => {
            let mut select = job::Entity::find().order_by_desc(job::Column::CreatedAt).limit(limit);
            if let Some(state) = state {
                let state = State::parse(&state).ok_or_else(|| {
                    format!(
                        "`{state}` is not a state: scheduled, available, running, completed, discarded or cancelled"
                    )
                })?;
                select = select.filter(job::Column::State.eq(state.as_str()));
            }
            if let Some(kind) = kind {
                select = select.filter(job::Column::Kind.eq(kind));
            }
            if let Some(queue) = queue {
                select = select.filter(job::Column::Queue.eq(queue));
            }
            if let Some(workspace) = workspace {
                let id = if workspace == "system" {
                    jobs::SYSTEM_WORKSPACE
                } else {
                    parse_workspace(&workspace)?
                };
                select = select.filter(job::Column::WorkspaceId.eq(id));
            }
            for job in select.all(db).await.map_err(|e| e.to_string())? {
                let last_error = job
                    .errors
                    .as_array()
                    .and_then(|errors| errors.last())
                    .and_then(|e| e["error"].as_str())
                    .unwrap_or("-");
                println!(
                    "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}",
                    job.id,
                    job.state,
                    job.kind,
                    job.queue,
                    job.attempt,
                    job.max_attempts,
                    job.run_at.to_rfc3339(),
                    last_error
                );
            }
            Ok(())
        }
        JobsCommand::Retry { id } => {
            let id = job_id(&id)?;
            show(jobs::retry(db, workspace_of(id).await?, id).await)
        }
        JobsCommand::Cancel { id } => {
            let id = job_id(&id)?;
            show(jobs::cancel(db, workspace_of(id).await?, id).await)
        }
    }
}

/// A workspace id as the command line takes it: a UUID or a global id.
fn parse_workspace(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text)
        .ok()
        .or_else(|| decode_as(text, NodeKind::Workspace))
        .ok_or_else(|| format!("`{text}` is not a workspace id"))
}

async fn connect(settings: &Settings) -> Result<DatabaseConnection, String> {
    let (db, _) = db::connect(&settings.database)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    Ok(db)
}

async fn run(command: Option<Command>, mut settings: Settings) -> Result<(), String> {
    match command.unwrap_or(Command::Serve {
        host: None,
        port: None,
        demo: false,
        no_workers: false,
    }) {
        Command::Serve {
            host,
            port,
            demo,
            no_workers,
        } => {
            if no_workers {
                settings.server.run_jobs = false;
            }
            if let Some(host) = host {
                settings.server.host = host;
            }
            if let Some(port) = port {
                settings.server.port = port;
            }
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            first_start(&db).await?;
            if demo {
                seed_demo_once(&db).await?;
            }
            let app = Application::build(&settings).await.map_err(|e| e.to_string())?;
            tracing::info!(port = app.port(), host = %settings.server.host, "serving; GraphiQL at /graphql");
            app.run_until_stopped().await.map_err(|e| e.to_string())?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Worker => {
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            tracing::info!(concurrency = settings.jobs.concurrency, queues = ?settings.jobs.queues, "running the job workers");
            crate::server::run_workers(&settings).await.map_err(|e| e.to_string())?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Jobs { command } => {
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            jobs_command(&db, command).await
        }
        Command::Migrate => {
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            println!("migrations applied");
            Ok(())
        }
        Command::ExportSchema { output } => {
            let sdl = voxtur_graphql::sdl();
            match output {
                Some(path) => std::fs::write(&path, sdl).map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => {
                    print!("{sdl}");
                    Ok(())
                }
            }
        }
        Command::Workspace {
            command: WorkspaceCommand::Create { name },
        } => {
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            let ws = workspaces::create_workspace(&db, &name)
                .await
                .map_err(|e| e.for_operator())?;
            println!("{}", ws.id);
            Ok(())
        }
        Command::Workspace {
            command: WorkspaceCommand::List,
        } => {
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            let all = workspace::Entity::find()
                .order_by_asc(workspace::Column::CreatedAt)
                .all(&db)
                .await
                .map_err(|e| e.to_string())?;
            for ws in all {
                println!("{}\t{}\t{}", ws.id, ws.created_at.format("%Y-%m-%dT%H:%M:%SZ"), ws.name);
            }
            Ok(())
        }
        Command::ApiKey {
            command:
                ApiKeyCommand::Create {
                    workspace,
                    scopes,
                    name,
                },
        } => {
            let scopes = if scopes == "all" {
                ScopeSet::all()
            } else {
                ScopeSet::parse(&scopes)?
            };
            let workspace_id = Uuid::parse_str(&workspace)
                .ok()
                .or_else(|| decode_as(&workspace, NodeKind::Workspace))
                .ok_or_else(|| format!("`{workspace}` is not a workspace id"))?;
            let db = connect(&settings).await?;
            workspace::Entity::find_by_id(workspace_id)
                .one(&db)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no workspace with id {workspace_id}"))?;
            let issued = issue_api_key(&db, workspace_id, &name, &scopes)
                .await
                .map_err(|e| e.for_operator())?;
            println!("{}", issued.secret);
            Ok(())
        }
        Command::Contacts {
            command:
                ContactsCommand::Import {
                    file,
                    workspace,
                    map,
                    on_duplicate,
                    dry_run,
                },
        } => {
            let db = connect(&settings).await?;
            let on_duplicate = if on_duplicate == "skip" {
                voxtur_core::contacts::import::OnDuplicate::Skip
            } else {
                voxtur_core::contacts::import::OnDuplicate::Update
            };
            import_contacts(&db, &file, &workspace, map.as_deref(), on_duplicate, dry_run).await
        }
        Command::Segment {
            command: SegmentCommand::Export { id, output, bom },
        } => {
            let db = connect(&settings).await?;
            export_segment(&db, &id, output, bom).await
        }
        Command::Segment {
            command: SegmentCommand::Rebuild { ids, workspace },
        } => {
            let db = connect(&settings).await?;
            let mut targets = Vec::new();
            for id in &ids {
                let uuid = Uuid::parse_str(id)
                    .ok()
                    .or_else(|| decode_as(id, NodeKind::Segment))
                    .ok_or_else(|| format!("`{id}` is not a segment id"))?;
                let found = entities::segment::Entity::find_by_id(uuid)
                    .one(&db)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no segment with id {uuid}"))?;
                targets.push(found);
            }
            if let Some(workspace) = workspace {
                let workspace_id = Uuid::parse_str(&workspace)
                    .ok()
                    .or_else(|| decode_as(&workspace, NodeKind::Workspace))
                    .ok_or_else(|| format!("`{workspace}` is not a workspace id"))?;
                // Repair starts from the events: the tallies behaviour conditions read first.
                let started = std::time::Instant::now();
                voxtur_core::events::tally::rebuild(&db, workspace_id)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("event tallies recomputed in {:.2} s", started.elapsed().as_secs_f64());
                targets.extend(
                    voxtur_core::segments::in_dependency_order(&db, workspace_id)
                        .await
                        .map_err(|e| e.for_operator())?
                        .into_iter()
                        .map(|(segment, _)| segment),
                );
            }
            if targets.is_empty() {
                return Err("name segment ids or --workspace".into());
            }
            for segment in targets {
                if segment.kind != voxtur_core::segments::DYNAMIC {
                    println!("{} (static): nothing to rebuild", segment.name);
                    continue;
                }
                let started = std::time::Instant::now();
                let done = voxtur_core::segments::evaluate(&db, segment.id, segment.workspace_id, None)
                    .await
                    .map_err(|e| e.for_operator())?;
                println!(
                    "{}: {} entered, {} left, in {:.2} s",
                    segment.name,
                    done.entered,
                    done.exited,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Demo { contacts, command } => {
            let db = connect(&settings).await?;
            db::migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
            match command {
                None => print_demo(&db, contacts).await,
                Some(DemoCommand::Generate {
                    contacts,
                    events_per_contact,
                    seed,
                    until,
                    name,
                    json,
                }) => {
                    let until = until
                        .unwrap_or_else(|| chrono::Utc::now().date_naive())
                        .and_hms_opt(23, 59, 59)
                        .map(|t| t.and_utc())
                        .ok_or("invalid --until")?;
                    let options = GenerateOptions {
                        workspace_name: name,
                        contacts,
                        events_per_contact,
                        seed,
                        until,
                    };
                    generate_workspace(&db, &options, json).await
                }
            }
        }
    }
}

/// On a database without workspaces, creates one with an all-scopes key and prints it once.
async fn first_start(db: &DatabaseConnection) -> Result<(), String> {
    let count = workspace::Entity::find().count(db).await.map_err(|e| e.to_string())?;
    if count > 0 {
        return Ok(());
    }
    let ws = workspaces::create_workspace(db, "Default")
        .await
        .map_err(|e| e.for_operator())?;
    let issued = issue_api_key(db, ws.id, "admin (first start)", &ScopeSet::all())
        .await
        .map_err(|e| e.for_operator())?;
    println!("Created workspace \"Default\" ({}).", ws.id);
    println!("Admin API key, shown only now; keep it safe:\n\n  {}\n", issued.secret);
    println!("Send it in the header  Authorization: Bearer <the key above>");
    Ok(())
}

async fn seed_demo_once(db: &DatabaseConnection) -> Result<(), String> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let exists = workspace::Entity::find()
        .filter(workspace::Column::Name.eq("Demo"))
        .count(db)
        .await
        .map_err(|e| e.to_string())?;
    if exists > 0 {
        println!("Demo workspace already exists; create a key for it with `voxtur api-key create`.");
        return Ok(());
    }
    print_demo(db, 500).await
}

async fn export_segment(db: &DatabaseConnection, id: &str, output: Option<PathBuf>, bom: bool) -> Result<(), String> {
    use std::io::Write;
    let uuid = Uuid::parse_str(id)
        .ok()
        .or_else(|| decode_as(id, NodeKind::Segment))
        .ok_or_else(|| format!("`{id}` is not a segment id"))?;
    let segment = entities::segment::Entity::find_by_id(uuid)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no segment with id {uuid}"))?;
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let progress = indicatif::ProgressBar::new(segment.member_count.max(0) as u64).with_style(
        indicatif::ProgressStyle::with_template("exporting [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let options = voxtur_core::segments::export::ExportOptions::load(db, segment.workspace_id, bom)
        .await
        .map_err(|e| e.for_operator())?;
    let mut after = None;
    let mut written = 0;
    loop {
        let (csv, last, rows) =
            voxtur_core::segments::export::page(db, segment.workspace_id, segment.id, after, &options)
                .await
                .map_err(|e| e.for_operator())?;
        out.write_all(csv.as_bytes()).map_err(|e| e.to_string())?;
        written += rows;
        progress.set_position(written);
        if rows < voxtur_core::segments::export::PAGE {
            break;
        }
        after = last;
    }
    out.flush().map_err(|e| e.to_string())?;
    progress.finish_and_clear();
    eprintln!("exported {written} members of \"{}\"", segment.name);
    Ok(())
}

async fn import_contacts(
    db: &DatabaseConnection,
    file: &std::path::Path,
    workspace: &str,
    map: Option<&str>,
    on_duplicate: voxtur_core::contacts::import::OnDuplicate,
    dry_run: bool,
) -> Result<(), String> {
    use voxtur_core::contacts::import;
    let workspace_id = parse_workspace(workspace)?;
    let data = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let problems = |e: voxtur_core::errors::MutationError| match e {
        voxtur_core::errors::MutationError::Invalid(problems) => {
            problems.into_iter().map(|p| p.message).collect::<Vec<_>>().join("; ")
        }
        voxtur_core::errors::MutationError::Api(e) => e.for_operator(),
    };
    let staged = import::stage(db, workspace_id, name.as_deref(), data)
        .await
        .map_err(problems)?;
    let mapping: Vec<(String, String)> = match map {
        Some(map) => map
            .split(',')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| {
                pair.rsplit_once('=')
                    .map(|(column, field)| (column.trim().to_owned(), field.trim().to_owned()))
                    .ok_or_else(|| format!("`{pair}` is not COLUMN=FIELD"))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let fields =
                voxtur_core::custom_fields::Definitions::load(db, workspace_id, entities::enums::ObjectType::Contact)
                    .await
                    .map_err(|e| e.for_operator())?;
            let suggested: Vec<(String, String)> = import::suggest(&import::columns_of(&staged), &fields)
                .into_iter()
                .map(|(column, target)| (column, target.name()))
                .collect();
            let shown: Vec<String> = suggested.iter().map(|(c, f)| format!("{c}={f}")).collect();
            eprintln!("mapping (from the header; --map to choose): {}", shown.join(","));
            suggested
        }
    };
    let prepared = import::prepare(db, workspace_id, staged.id, &mapping, on_duplicate, dry_run)
        .await
        .map_err(problems)?;
    let progress = indicatif::ProgressBar::new(prepared.total_rows.max(0) as u64).with_style(
        indicatif::ProgressStyle::with_template("importing [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let done = import::run(db, &prepared, |p| progress.set_position(p.processed as u64))
        .await
        .map_err(|e| e.for_operator())?;
    progress.finish_and_clear();
    let verb = if dry_run { "would be " } else { "" };
    println!(
        "{} rows: {} {verb}created, {} {verb}updated, {} skipped, {} not imported",
        done.processed, done.created, done.updated, done.skipped, done.failed
    );
    let problems = import::problems(db, prepared.id, 0, 50)
        .await
        .map_err(|e| e.for_operator())?;
    for problem in &problems {
        let column = problem
            .column_name
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        println!("  row {}{column}: {}", problem.row_number, problem.message);
    }
    if done.failed > problems.len() as i64 {
        println!(
            "  ... see contactImport(id: \"{}\") {{ errors }} for the rest",
            NodeKind::ContactImport.encode(prepared.id)
        );
    }
    Ok(())
}

async fn generate_workspace(db: &DatabaseConnection, options: &GenerateOptions, json: bool) -> Result<(), String> {
    let progress = indicatif::ProgressBar::new(options.contacts).with_style(
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let summary = demo::generate::generate(db, options, &progress)
        .await
        .map_err(|e| e.for_operator())?;
    progress.finish_and_clear();
    let api_key = issue_api_key(db, summary.workspace_id, "generated", &ScopeSet::all())
        .await
        .map_err(|e| e.for_operator())?
        .secret;
    let write_key = voxtur_core::events::write_keys::issue(db, summary.workspace_id, "generated", None)
        .await
        .map_err(|e| e.for_operator())?
        .secret;
    if json {
        let mut value = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
        value["api_key"] = api_key.into();
        value["write_key"] = write_key.into();
        println!("{value}");
    } else {
        let rows = summary.contacts + summary.tags + summary.events + summary.companies;
        println!(
            "Generated workspace \"{}\" ({}) in {:.1} s ({:.0} rows/s):",
            options.workspace_name,
            summary.workspace_id,
            summary.seconds,
            rows as f64 / summary.seconds.max(1e-9)
        );
        println!(
            "  {} users, {} companies, {} contacts ({} tags), {} events",
            summary.users, summary.companies, summary.contacts, summary.tags, summary.events
        );
        println!(
            "  busiest contact: {} events; contacts without events: {}",
            summary.busiest_contact_events, summary.contacts_without_events
        );
        println!("API key (shown once):   {api_key}");
        println!("Write key (shown once): {write_key}");
    }
    Ok(())
}

async fn print_demo(db: &DatabaseConnection, contacts: usize) -> Result<(), String> {
    let ws = demo::seed(db, "Demo", contacts).await.map_err(|e| e.for_operator())?;
    let issued = issue_api_key(db, ws.id, "demo", &ScopeSet::all())
        .await
        .map_err(|e| e.for_operator())?;
    println!("Created workspace \"Demo\" ({}) with {contacts} contacts.", ws.id);
    println!("Demo API key, shown only now:\n\n  {}\n", issued.secret);
    Ok(())
}
