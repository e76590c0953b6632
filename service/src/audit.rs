//! The audit log: reading it, and verifying the chain and every version's content.

use std::collections::HashMap;

use domain::access::Action;
use domain::audit::GENESIS;
use domain::model::{AuditEvent, Page, VerifyReport};
use futures_util::TryStreamExt;

use crate::store::{self, AuditFilter};
use crate::{Principal, Registry, Result, page_limit};

impl Registry {
    /// Events newest first, filtered; `filter.before_seq` is the cursor.
    pub async fn audit(&self, who: &Principal, filter: &AuditFilter, limit: Option<i64>) -> Result<Page<AuditEvent>> {
        who.require(Action::Read)?;
        let limit = page_limit(limit, 100, 1000)?;
        let mut rows = store::audit_page(&self.store().reader, filter, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| r.seq.to_string()) } else { None };
        Ok(Page { items: rows.into_iter().map(Into::into).collect(), next_cursor })
    }

    /// Recomputes the whole chain and every version's hash from its content, and checks
    /// that each version's hash is the one its audit event recorded.
    pub async fn verify(&self, who: &Principal) -> Result<VerifyReport> {
        who.require(Action::Read)?;
        // One read transaction: the chain and the versions are checked as of one instant.
        let mut tx = self.store().reader.begin().await?;
        let mut report = VerifyReport { ok: true, events: 0, head: GENESIS.to_owned(), first_bad_seq: None, message: None, versions: 0 };
        {
            let mut events = store::all_events(&mut *tx);
            let mut expected_seq = 1;
            while let Some(row) = events.try_next().await? {
                report.events += 1;
                let problem = if row.seq != expected_seq {
                    Some(format!("event {expected_seq} is missing (found {} instead)", row.seq))
                } else if row.prev_hash != report.head {
                    Some(format!("event {} does not follow the event before it", row.seq))
                } else if row.computed_hash() != row.hash {
                    Some(format!("event {} was changed after it was written", row.seq))
                } else {
                    None
                };
                if let Some(message) = problem {
                    report.ok = false;
                    report.first_bad_seq = Some(row.seq);
                    report.message = Some(message);
                    return Ok(report);
                }
                report.head = row.hash;
                expected_seq += 1;
            }
        }
        let mut recorded: HashMap<(String, i64), (String, i64)> = store::recorded_version_hashes(&mut *tx)
            .await?
            .into_iter()
            .map(|(seq, p, v, h)| ((p, v), (h, seq)))
            .collect();
        let names: HashMap<i64, String> =
            store::all_prompts(&mut *tx).await?.into_iter().map(|p| (p.id, p.name)).collect();
        let mut versions = store::all_versions(&mut *tx);
        while let Some(row) = versions.try_next().await? {
            report.versions += 1;
            let name = names.get(&row.prompt_id).cloned().unwrap_or_else(|| format!("#{}", row.prompt_id));
            let computed = row.content().map(|c| c.hash()).ok();
            let record = recorded.remove(&(name.clone(), row.version));
            let problem = if computed.as_deref() != Some(row.hash.as_str()) {
                Some(format!("the content of {name} version {} no longer matches its hash", row.version))
            } else if record.as_ref().map(|(h, _)| h) != Some(&row.hash) {
                Some(format!("{name} version {} is not the version the audit log recorded", row.version))
            } else {
                None
            };
            if let Some(message) = problem {
                report.ok = false;
                report.first_bad_seq = record.map(|(_, seq)| seq);
                report.message = Some(message);
                return Ok(report);
            }
        }
        if let Some(((name, version), (_, seq))) = recorded.into_iter().min_by_key(|(_, (_, seq))| *seq) {
            report.ok = false;
            report.first_bad_seq = Some(seq);
            report.message = Some(format!("{name} version {version} is in the audit log but missing from storage"));
        }
        Ok(report)
    }
}
