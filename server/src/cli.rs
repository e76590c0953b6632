//! The command line (API.md "Command line"). Commands that change something go through
//! the same service layer as the API, as the operator (`cli:$USER` in the audit log).

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use domain::access::{Role, Scope};
use service::{Durability, Location, Principal, Registry};

use crate::files;

#[derive(Parser, Debug)]
#[command(name = "promptledger", version, about = "A self-hosted registry for production prompts")]
pub struct Cli {
    /// The SQLite database file, or a PostgreSQL URL (`postgres://user:pass@host/db`) that
    /// several replicas share; created (the file) and migrated when needed.
    #[arg(long, global = true, env = "PROMPTLEDGER_DB", default_value = "./promptledger.db", value_parser = parse_location)]
    pub db: Location,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API and the console.
    Serve(ServeArgs),
    /// Manage people.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage model providers for evaluations.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Run evaluations.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Move a registry between databases.
    #[command(subcommand)]
    Db(DbCommand),
    /// Pin what refs resolve to now in a lockfile (`name@label` or `name@N`).
    Lock {
        #[arg(required = true)]
        refs: Vec<String>,
        #[arg(long, default_value = "prompts.lock")]
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Check a lockfile: exit 0 when every ref resolves as locked, 1 (with a table of
    /// what moved) when not, 2 on a usage error.
    Verify {
        #[arg(long, default_value = "prompts.lock")]
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Write the registry as files: one TOML file per prompt (content, config, labels, suites).
    Export {
        dir: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Apply files written by `export` (and edited): print the plan, then make it; exit 1
    /// when anything was refused or in conflict.
    Apply {
        dir: PathBuf,
        /// Print the plan only.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// Work against a running server instead of the database (`--db`).
#[derive(clap::Args, Debug)]
pub struct ServerArg {
    /// The server's base URL (`http://host:3000`); its key from `PROMPTLEDGER_API_KEY`.
    #[arg(long, env = "PROMPTLEDGER_SERVER")]
    pub server: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Copy a whole registry (SQLite file or postgres:// URL) into an empty database, then
    /// verify the audit chain and every version's hash where it arrived.
    Copy {
        #[arg(long, value_parser = parse_location)]
        from: Location,
        #[arg(long, value_parser = parse_location)]
        to: Location,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProviderCommand {
    /// Register (or change) a model provider; its models are then named NAME/MODEL.
    Add {
        name: String,
        #[arg(long, value_enum)]
        kind: KindArg,
        /// OpenAI-compatible: up to the API version (https://api.openai.com/v1);
        /// Anthropic: the host (https://api.anthropic.com).
        #[arg(long)]
        base_url: String,
        /// The environment variable that holds the API key at run time (never stored).
        #[arg(long)]
        api_key_env: Option<String>,
    },
    /// Set the price of one of a provider's models, in dollars per million tokens.
    Price {
        name: String,
        #[arg(long)]
        model: String,
        #[arg(long)]
        input: f64,
        #[arg(long)]
        output: f64,
    },
    /// List providers.
    List,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    Openai,
    Anthropic,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Run a suite of a prompt; exit 0 when the run passes, 1 when it does not.
    Run {
        prompt: String,
        #[arg(long)]
        suite: String,
        #[arg(long, conflicts_with = "version")]
        label: Option<String>,
        #[arg(long)]
        version: Option<i64>,
        /// provider/model (default: the version's config.model).
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        concurrency: Option<u32>,
    },
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PROMPTLEDGER_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Directory with the console's compiled assets (cargo-leptos's `target/site`).
    #[arg(long, env = "PROMPTLEDGER_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// `full` fsyncs every commit (survives power loss); `normal` fsyncs at checkpoints
    /// (survives a crash of the process, faster).
    #[arg(long, env = "PROMPTLEDGER_DURABILITY", value_enum, default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,
    /// Days raw generations and scores are kept (metrics rollups are kept for good).
    #[arg(long, env = "PROMPTLEDGER_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum DurabilityArg {
    Full,
    Normal,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a person with a role.
    Add {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List people.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create a key; the key is printed alone on the last line, once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// Make the key act as this user (it can do no more than their role allows).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a key by name.
    Revoke { name: String },
    /// List keys (never their secrets).
    List,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the audit chain and every version's hash; exit 1 if anything is off.
    Verify,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "expected viewer, editor, publisher or admin".into())
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| "expected app, read, write or admin".into())
}

/// Runs a command; the result is the process exit code.
pub async fn run(cli: Cli) -> CliResult<i32> {
    match cli.command {
        Command::Serve(args) => serve(&cli.db, args).await,
        Command::User(cmd) => {
            let registry = open(&cli.db, Durability::Full).await?;
            let operator = Principal::operator();
            match cmd {
                UserCommand::Add { name, role, password_stdin } => {
                    let password = if password_stdin { Some(read_password()?) } else { None };
                    let user = registry.add_user(&operator, &name, role, password).await?;
                    println!("added {} ({})", user.username, user.role);
                }
                UserCommand::List => {
                    for u in registry.list_users(&operator).await? {
                        let state = if u.disabled { " disabled" } else { "" };
                        println!("{}\t{}{state}", u.username, u.role);
                    }
                }
            }
            registry.close().await;
            Ok(0)
        }
        Command::Apikey(cmd) => {
            let registry = open(&cli.db, Durability::Full).await?;
            let operator = Principal::operator();
            match cmd {
                ApikeyCommand::Create { name, scope, user } => {
                    let key = registry.create_key(&operator, &name, scope, user.as_deref()).await?;
                    let acting = key.user.as_deref().map(|u| format!(", acting as {u}")).unwrap_or_default();
                    eprintln!(
                        "created key '{}' with {} scope{acting}. Store it now: it is not shown again.",
                        key.name,
                        scope.as_str()
                    );
                    println!("{}", key.key);
                }
                ApikeyCommand::Revoke { name } => {
                    registry.revoke_key(&operator, &name).await?;
                    println!("revoked {name}");
                }
                ApikeyCommand::List => {
                    for k in registry.list_keys(&operator).await? {
                        let revoked = k.revoked_at.map(|t| format!(" revoked {t}")).unwrap_or_default();
                        println!("{}\t{}…\t{}\t{}{revoked}", k.name, k.prefix, k.scope, k.user.unwrap_or_default());
                    }
                }
            }
            registry.close().await;
            Ok(0)
        }
        Command::Provider(cmd) => provider(&cli.db, cmd).await,
        Command::Eval(cmd) => eval_run(&cli.db, cmd).await,
        Command::Db(DbCommand::Copy { from, to }) => {
            let started = std::time::Instant::now();
            let report = service::copy::copy_registry(&from, &to)
                .await
                .map_err(|e| CliError(format!("could not copy {} to {}: {e}", from.display(), to.display())))?;
            for (table, rows) in &report.tables {
                println!("{table:<24} {rows:>10} rows");
            }
            println!(
                "copied and verified: {} events, {} versions ({:.1} s)",
                report.events,
                report.versions,
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        command @ (Command::Lock { .. } | Command::Verify { .. } | Command::Export { .. } | Command::Apply { .. }) => {
            files::run(command, &cli.db).await
        }
        Command::Audit(AuditCommand::Verify) => {
            let registry = open(&cli.db, Durability::Full).await?;
            let started = std::time::Instant::now();
            let report = registry.verify(&Principal::operator()).await?;
            let took = started.elapsed();
            registry.close().await;
            if report.ok {
                println!(
                    "intact: {} events, {} versions checked, head {} ({:.0} ms)",
                    report.events,
                    report.versions,
                    report.head,
                    took.as_secs_f64() * 1000.0
                );
                Ok(0)
            } else {
                println!(
                    "BROKEN at event {}: {}",
                    report.first_bad_seq.map_or("?".into(), |s| s.to_string()),
                    report.message.unwrap_or_default()
                );
                Ok(1)
            }
        }
    }
}

async fn provider(db: &Location, cmd: ProviderCommand) -> CliResult<i32> {
    use domain::eval::{ModelPrice, Provider, ProviderKind};
    let registry = open(db, Durability::Full).await?;
    let operator = Principal::operator();
    match cmd {
        ProviderCommand::Add { name, kind, base_url, api_key_env } => {
            let kind = match kind {
                KindArg::Openai => ProviderKind::Openai,
                KindArg::Anthropic => ProviderKind::Anthropic,
            };
            let p = registry.put_provider(&operator, Provider { name, kind, base_url, api_key_env }).await?;
            println!("provider {} saved: models are named {}/MODEL", p.name, p.name);
        }
        ProviderCommand::Price { name, model, input, output } => {
            let price = ModelPrice { model, input_per_mtok: input, output_per_mtok: output };
            let p = registry.put_price(&operator, &name, price).await?;
            println!("{name}/{}: ${} in, ${} out per million tokens", p.model, p.input_per_mtok, p.output_per_mtok);
        }
        ProviderCommand::List => {
            for p in registry.providers(&operator).await? {
                let key = p.api_key_env.map(|v| format!("key from ${v}")).unwrap_or_else(|| "no key".into());
                println!("{}\t{:?}\t{}\t{key}", p.name, p.kind, p.base_url);
            }
        }
    }
    registry.close().await;
    Ok(0)
}

/// Runs a suite in this process against the database, with a progress bar, then prints
/// a table of the cases and a summary. Ctrl-C cancels the run.
async fn eval_run(db: &Location, cmd: EvalCommand) -> CliResult<i32> {
    use domain::eval::{NewRun, RunStatus};
    let EvalCommand::Run { prompt, suite, label, version, model, concurrency } = cmd;
    let registry = open(db, Durability::Full).await?;
    let operator = Principal::operator();
    let run = registry.start_run(&operator, &prompt, NewRun { suite, label, version, model, concurrency }).await?;
    eprintln!(
        "run {}: {} v{} · suite {} · {} · {} cases",
        run.id, run.prompt, run.version, run.suite, run.model, run.total
    );
    let bar = indicatif::ProgressBar::new(run.total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cases · {msg} · {elapsed}")
            .map_err(|e| CliError(e.to_string()))?,
    );
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let run = loop {
        let run = registry.eval_run(&operator, &run.id).await?;
        bar.set_position(run.done);
        bar.set_message(format!("{} passed, {} failed", run.passed, run.failed));
        if run.status.is_final() {
            break run;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = &mut interrupt => {
                registry.cancel_run(&operator, &run.id).await?;
            }
        }
    };
    bar.finish_and_clear();
    println!("{:>5}  {:<4}  {:>5}  {:>8}  {:>10}  case", "#", "", "score", "latency", "cost");
    for r in &run.results {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        let latency = r.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default();
        let cost = r.cost.map(|c| format!("${c:.6}")).unwrap_or_default();
        let why = r
            .error
            .clone()
            .or_else(|| r.assertions.iter().find(|a| !a.passed).map(|a| format!("{}: {}", a.kind, a.reason)));
        let description = if r.description.is_empty() { format!("case {}", r.case + 1) } else { r.description.clone() };
        println!("{:>5}  {mark:<4}  {:>5.2}  {latency:>8}  {cost:>10}  {description}", r.case + 1, r.score);
        if let Some(why) = why.filter(|_| !r.passed) {
            println!("{:>33}{why}", "");
        }
    }
    println!(
        "{}: {}/{} passed ({:.1}%, needs {:.1}%), cost ${:.6}{}",
        run.status.as_str().to_uppercase(),
        run.passed,
        run.total,
        run.pass_rate * 100.0,
        run.threshold * 100.0,
        run.cost,
        run.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
    );
    registry.close().await;
    Ok(if run.status == RunStatus::Passed { 0 } else { 1 })
}

/// A command-line failure: printed as one sentence, exit status 2.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<service::ServiceError> for CliError {
    fn from(e: service::ServiceError) -> Self {
        CliError(e.to_string())
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError(s)
    }
}

pub type CliResult<T> = Result<T, CliError>;

fn read_password() -> CliResult<String> {
    if std::io::stdin().is_terminal() {
        eprintln!("password (input is visible; pipe it in to avoid that):");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError(format!("could not read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn parse_location(db: &str) -> Result<Location, String> {
    if db.is_empty() {
        return Err("give a SQLite file path or a postgres:// URL".into());
    }
    Ok(Location::parse(db))
}

async fn open(db: &Location, durability: Durability) -> CliResult<Registry> {
    Registry::open(db, durability)
        .await
        .map_err(|e| CliError(format!("could not open the database {}: {e}", db.display())))
}

async fn serve(db: &Location, args: ServeArgs) -> CliResult<i32> {
    let durability = match args.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    let registry = open(db, durability).await?;
    if registry.has_no_users().await? {
        let db = db.display();
        eprintln!(
            "No user exists yet. Create the first admin and a key for them:\n  \
             promptledger --db {db} user add admin --role admin --password-stdin\n  \
             promptledger --db {db} apikey create --name admin-cli --scope admin --user admin"
        );
    }
    let site_root = crate::console::find_site_root(args.site_root);
    match &site_root {
        Some(root) => tracing::info!(site_root = %root.display(), "console assets found"),
        None => tracing::warn!(
            "console assets not found: serving the API only (build them with `cargo leptos build --release --split`)"
        ),
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| CliError(format!("could not listen on {}: {e}", args.addr)))?;
    let addr = listener.local_addr().map_err(|e| CliError(e.to_string()))?;
    tracing::info!(%addr, db = %db.display(), "promptledger listening");
    println!("listening on http://{addr}");
    registry.configure_telemetry(service::TelemetrySettings {
        retention: std::time::Duration::from_secs(u64::from(args.retention_days) * 86_400),
        ..Default::default()
    });
    let app = crate::router(registry.clone(), site_root);
    crate::serve(listener, registry.clone(), app, shutdown_signal())
        .await
        .map_err(|e| CliError(format!("server failed: {e}")))?;
    registry.interrupt_runs().await?;
    registry.close().await;
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
