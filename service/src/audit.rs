//! The audit log: reading it, and verifying the chain and every version's content.

use std::collections::HashMap;

use domain::access::Action;
use domain::audit::GENESIS;
use domain::model::{AuditEvent, Page, VerifyReport};
use domain::vocabulary::AuditAction;
use sqlx::AnyConnection;

use crate::store::{self, AuditFilter};
use crate::{Principal, Registry, Result, number_cursor, page_limit};

impl Registry {
    /// Events newest first, filtered; `cursor` is the `next_cursor` of the page before.
    pub async fn audit(
        &self,
        who: &Principal,
        mut filter: AuditFilter,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>> {
        who.require(Action::Read)?;
        let limit = page_limit(limit, 100, 1000)?;
        filter.before_seq = number_cursor(cursor)?;
        let mut rows = store::audit_page(&self.store().reader, &filter, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| r.seq.to_string()) } else { None };
        Ok(Page { items: rows.into_iter().map(Into::into).collect(), next_cursor })
    }

    /// Recomputes the whole chain and every version's hash from its stored content, and
    /// checks that each version's hash is the one its audit event recorded (so a version
    /// rewritten together with its hash is caught too). The chain and the versions are
    /// read at once, on two connections.
    pub async fn verify(&self, who: &Principal) -> Result<VerifyReport> {
        who.require(Action::Read)?;
        // The versions' snapshot is taken first (a deferred transaction takes it at its
        // first read), so every version in it has its creating event in the chain's
        // snapshot; events newer than `last_seq` may name versions it cannot see yet.
        let mut versions_tx = self.store().snapshot().await?;
        let last_seq = store::last_seq(&mut *versions_tx).await?;
        let mut chain_tx = self.store().snapshot().await?;
        let chain = tokio::spawn(async move { check_chain(&mut chain_tx).await });
        let versions = tokio::spawn(async move { check_versions(&mut versions_tx).await });
        let (chain, versions) = (join(chain).await?, join(versions).await?);

        let mut report = VerifyReport {
            ok: true,
            events: chain.events,
            head: chain.head,
            first_bad_seq: None,
            message: None,
            versions: versions.stored.len() as i64,
        };
        let mut fail = |seq: Option<i64>, message: String| {
            report.ok = false;
            report.first_bad_seq = seq;
            report.message = Some(message);
        };
        let mut recorded = chain.recorded;
        if let Some((seq, message)) = chain.problem {
            fail(Some(seq), message);
        } else if let Some((name, version)) = versions.first_content_mismatch {
            let seq = recorded.get(&(name.clone(), version)).map(|(_, seq)| *seq);
            fail(seq, format!("the content of {name} version {version} no longer matches its hash"));
        } else if let Some(((name, version), seq)) = versions.stored.into_iter().find_map(|(key, hash)| {
            let record = recorded.remove(&key);
            (record.as_ref().map(|(h, _)| h) != Some(&hash)).then(|| (key, record.map(|(_, seq)| seq)))
        }) {
            fail(seq, format!("{name} version {version} is not the version the audit log recorded"));
        } else if let Some(((name, version), (_, seq))) =
            recorded.into_iter().filter(|(_, (_, seq))| *seq <= last_seq).min_by_key(|(_, (_, seq))| *seq)
        {
            fail(Some(seq), format!("{name} version {version} is in the audit log but missing from storage"));
        }
        Ok(report)
    }
}

async fn join<T>(task: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    task.await.map_err(|e| crate::ServiceError::internal(format!("verification task failed: {e}")))?
}

/// (prompt name, version) -> (hash, seq) of the event that created it.
type Recorded = HashMap<(String, i64), (String, i64)>;

struct Chain {
    events: i64,
    head: String,
    /// The first event that breaks the chain.
    problem: Option<(i64, String)>,
    recorded: Recorded,
}

async fn check_chain(conn: &mut AnyConnection) -> Result<Chain> {
    let mut chain = Chain { events: 0, head: GENESIS.to_owned(), problem: None, recorded: HashMap::new() };
    let mut expected_seq = 1;
    loop {
        let rows = store::events_after(&mut *conn, expected_seq - 1).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            chain.events += 1;
            let problem = if row.seq != expected_seq {
                Some(format!("event {expected_seq} is missing (found {} instead)", row.seq))
            } else if row.prev_hash != chain.head {
                Some(format!("event {} does not follow the event before it", row.seq))
            } else if row.computed_hash() != row.hash {
                Some(format!("event {} was changed after it was written", row.seq))
            } else {
                None
            };
            if let Some(message) = problem {
                chain.problem = Some((row.seq, message));
                return Ok(chain);
            }
            if matches!(AuditAction::parse(&row.action), Some(AuditAction::PromptCreated | AuditAction::VersionCreated))
                && let (Some(prompt), Some(version)) = (row.prompt, row.version)
            {
                let hash = serde_json::from_str::<RecordedHash>(&row.detail).map(|d| d.hash).unwrap_or_default();
                chain.recorded.insert((prompt, version), (hash, row.seq));
            }
            chain.head = row.hash;
            expected_seq += 1;
        }
    }
    Ok(chain)
}

struct Versions {
    /// (prompt name, version) -> stored hash, in storage order.
    stored: Vec<((String, i64), String)>,
    first_content_mismatch: Option<(String, i64)>,
}

async fn check_versions(conn: &mut AnyConnection) -> Result<Versions> {
    let names: HashMap<i64, String> =
        store::all_prompts(&mut *conn).await?.into_iter().map(|p| (p.id, p.name)).collect();
    let mut out = Versions { stored: Vec::new(), first_content_mismatch: None };
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let rows = store::versions_after(&mut *conn, after).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            after = (row.prompt_id, row.version);
            let name = names.get(&row.prompt_id).cloned().unwrap_or_else(|| format!("#{}", row.prompt_id));
            if out.first_content_mismatch.is_none() && row.parts().hash() != row.hash {
                out.first_content_mismatch = Some((name.clone(), row.version));
            }
            out.stored.push(((name, row.version), row.hash));
        }
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct RecordedHash {
    #[serde(default)]
    hash: String,
}
