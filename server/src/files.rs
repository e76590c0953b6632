//! `lock`, `verify`, `export` and `apply` (API.md "Command line"): against a running
//! server (`--server`, the key from `PROMPTLEDGER_API_KEY`) or on the database directly.
//! Either way the work is the service layer's (`Registry::lock`, `export_files`,
//! `apply_files`); only the transport differs.

use std::path::{Path, PathBuf};

use domain::model::{ApplyReport, Locked, Lockfile, PromptFile};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use service::{Durability, Location, Principal, Registry};

use crate::cli::{CliError, CliResult, Command};

/// Where the registry is: a server's API, or the database itself.
pub enum Target {
    Server { base: String, key: String, http: reqwest::Client },
    Db(Registry),
}

impl Target {
    pub async fn open(server: Option<String>, db: &Location) -> CliResult<Target> {
        match server {
            Some(base) => {
                let key = std::env::var("PROMPTLEDGER_API_KEY").map_err(|_| {
                    CliError("set PROMPTLEDGER_API_KEY to an API key of the server (--server needs one)".into())
                })?;
                Ok(Target::Server { base: base.trim_end_matches('/').to_owned(), key, http: reqwest::Client::new() })
            }
            None => Ok(Target::Db(
                Registry::open(db, Durability::Full)
                    .await
                    .map_err(|e| CliError(format!("could not open the database {}: {e}", db.display())))?,
            )),
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: reqwest::Method, path: &str, body: Option<impl Serialize>) -> CliResult<T> {
        let Target::Server { base, key, http } = self else { unreachable!("only for a server") };
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| CliError(format!("could not reach {base}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CliError(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(CliError(format!("{base} answered {status}: {message}")));
        }
        serde_json::from_str(&text).map_err(|e| CliError(format!("unexpected answer from {base}: {e}")))
    }

    pub async fn lock(&self, refs: &[String]) -> CliResult<Lockfile> {
        match self {
            Target::Db(r) => Ok(r.lock(&Principal::operator(), refs).await?),
            Target::Server { .. } => self.call(reqwest::Method::POST, "/api/v1/lock", Some(json!({ "refs": refs }))).await,
        }
    }

    pub async fn export(&self) -> CliResult<Vec<PromptFile>> {
        match self {
            Target::Db(r) => Ok(r.export_files(&Principal::operator()).await?),
            Target::Server { .. } => {
                let v: serde_json::Value = self.call(reqwest::Method::GET, "/api/v1/export", None::<()>).await?;
                serde_json::from_value(v["prompts"].clone()).map_err(|e| CliError(e.to_string()))
            }
        }
    }

    pub async fn apply(&self, files: Vec<PromptFile>, dry_run: bool) -> CliResult<ApplyReport> {
        match self {
            Target::Db(r) => Ok(r.apply_files(&Principal::operator(), files, dry_run).await?),
            Target::Server { .. } => {
                let body = json!({ "prompts": files, "dry_run": dry_run });
                self.call(reqwest::Method::POST, "/api/v1/apply", Some(body)).await
            }
        }
    }

    pub async fn close(self) {
        if let Target::Db(r) = self {
            r.close().await;
        }
    }
}

/// Runs `lock`, `verify`, `export` or `apply`.
pub async fn run(command: Command, db: &Location) -> CliResult<i32> {
    let server = match &command {
        Command::Lock { server, .. }
        | Command::Verify { server, .. }
        | Command::Export { server, .. }
        | Command::Apply { server, .. } => server.server.clone(),
        _ => unreachable!("only the file commands come here"),
    };
    let target = Target::open(server, db).await?;
    let code = match command {
        Command::Lock { refs, file, .. } => lock(&target, &refs, &file).await,
        Command::Verify { file, .. } => verify(&target, &file).await,
        Command::Export { dir, .. } => export(&target, &dir).await,
        Command::Apply { dir, dry_run, .. } => apply(&target, &dir, dry_run).await,
        _ => unreachable!("only the file commands come here"),
    };
    target.close().await;
    code
}

/// `lock`: writes the lockfile.
pub async fn lock(target: &Target, refs: &[String], file: &Path) -> CliResult<i32> {
    let lock = target.lock(refs).await?;
    let text = serde_json::to_string_pretty(&lock).map_err(|e| CliError(e.to_string()))? + "\n";
    std::fs::write(file, text).map_err(|e| CliError(format!("could not write {}: {e}", file.display())))?;
    for p in &lock.prompts {
        println!("{}@{}\tversion {}\t{}", p.name, p.reference, p.version, p.resolved_hash);
    }
    eprintln!("locked {} ref(s) in {}", lock.prompts.len(), file.display());
    Ok(0)
}

/// `verify`: 0 when every ref resolves as locked, 1 (with a table of what moved) when not.
pub async fn verify(target: &Target, file: &Path) -> CliResult<i32> {
    let text = std::fs::read_to_string(file).map_err(|e| CliError(format!("could not read {}: {e}", file.display())))?;
    let locked: Lockfile =
        serde_json::from_str(&text).map_err(|e| CliError(format!("{} is not a lockfile: {e}", file.display())))?;
    let mut moved = Vec::new();
    for p in &locked.prompts {
        let reference = format!("{}@{}", p.name, p.reference);
        match target.lock(std::slice::from_ref(&reference)).await {
            Ok(now) => {
                let now = &now.prompts[0];
                if let Some(what) = what_moved(p, now) {
                    moved.push((reference, p.version.to_string(), now.version.to_string(), what));
                }
            }
            Err(e) => moved.push((reference, p.version.to_string(), "-".into(), format!("does not resolve: {e}"))),
        }
    }
    if moved.is_empty() {
        println!("ok: {} ref(s) resolve as locked", locked.prompts.len());
        return Ok(0);
    }
    println!("{:<40} {:>6} {:>6}  WHAT MOVED", "REF", "LOCKED", "NOW");
    for (reference, was, now, what) in &moved {
        println!("{reference:<40} {was:>6} {now:>6}  {what}");
    }
    println!("{} of {} ref(s) moved since {} was written", moved.len(), locked.prompts.len(), file.display());
    Ok(1)
}

/// What changed between a locked ref and how it resolves now, in words.
fn what_moved(was: &Locked, now: &Locked) -> Option<String> {
    if was.version != now.version {
        return Some(format!("the label moved: version {} → {}", was.version, now.version));
    }
    if was.resolved_hash == now.resolved_hash {
        return None;
    }
    let includes: Vec<String> = now
        .includes
        .iter()
        .filter_map(|i| {
            let before = was.includes.iter().find(|b| b.name == i.name && b.reference == i.reference)?;
            (before.hash != i.hash).then(|| format!("{}@{} {} → {}", i.name, i.reference, before.version, i.version))
        })
        .collect();
    Some(match includes.is_empty() {
        true => "an include moved (deeper down)".into(),
        false => format!("an include moved: {}", includes.join(", ")),
    })
}

/// `export DIR`: one TOML file per prompt, in folders as the names have them.
pub async fn export(target: &Target, dir: &Path) -> CliResult<i32> {
    let files = target.export().await?;
    for f in &files {
        let path = dir.join(format!("{}.toml", f.name));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CliError(format!("could not create {}: {e}", parent.display())))?;
        }
        let text = toml::to_string_pretty(f)
            .map_err(|e| CliError(format!("'{}' cannot be written as TOML ({e}); TOML has no null: remove nulls from its config", f.name)))?;
        std::fs::write(&path, text).map_err(|e| CliError(format!("could not write {}: {e}", path.display())))?;
    }
    println!("exported {} prompt(s) to {}", files.len(), dir.display());
    Ok(0)
}

/// `apply DIR`: prints the plan (and with `--dry-run` only the plan); exits 1 when
/// anything was refused or in conflict.
pub async fn apply(target: &Target, dir: &Path, dry_run: bool) -> CliResult<i32> {
    let files = read_files(dir)?;
    let report = target.apply(files, dry_run).await?;
    for s in &report.steps {
        let detail = if s.detail.is_empty() { String::new() } else { format!("  {}", s.detail) };
        println!("{:<10} {:<12} {}{detail}", s.outcome, s.action, s.prompt);
    }
    let changes = report.steps.iter().filter(|s| s.action != "unchanged").count();
    println!(
        "{}: {changes} change(s), {} refused",
        if dry_run { "plan" } else { "applied" },
        report.steps.iter().filter(|s| matches!(s.outcome.as_str(), "refused" | "conflict")).count()
    );
    Ok(if report.refused { 1 } else { 0 })
}

/// Every `*.toml` under `dir`; a file's name is its path without `.toml`.
fn read_files(dir: &Path) -> CliResult<Vec<PromptFile>> {
    let mut paths = Vec::new();
    collect(dir, &mut paths)?;
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| CliError(format!("could not read {}: {e}", path.display())))?;
        let file: PromptFile =
            toml::from_str(&text).map_err(|e| CliError(format!("{} is not a prompt file: {e}", path.display())))?;
        let expected = path.strip_prefix(dir).unwrap_or(&path).with_extension("").to_string_lossy().replace('\\', "/");
        if file.name != expected {
            return Err(CliError(format!(
                "{} says name = \"{}\" but its path says \"{expected}\": rename one to match the other",
                path.display(),
                file.name
            )));
        }
        files.push(file);
    }
    Ok(files)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> CliResult<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| CliError(format!("could not read {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(|e| CliError(e.to_string()))?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}
