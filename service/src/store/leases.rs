//! Leases on background work that runs once across replicas (PostgreSQL).

use sqlx::{AnyConnection, AnyExecutor};

use crate::error::Result;

/// Now, in µs, on the database's clock (replicas' clocks may disagree; the database's is
/// one).
const NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)";

/// Takes the lease on `work` for `holder` for `ttl_us` when it is free or has lapsed,
/// or renews it when `holder` holds it already and `renew` is true; whether it is held.
pub async fn take_lease(conn: &mut AnyConnection, work: &str, holder: &str, ttl_us: i64, renew: bool) -> Result<bool> {
    let held_already = if renew { "leases.holder = excluded.holder OR" } else { "" };
    let held: Option<String> = sqlx::query_scalar(&format!(
        "INSERT INTO leases (name, holder, until) VALUES ($1, $2, {NOW} + $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE {held_already} leases.until < {NOW}
         RETURNING holder"
    ))
    .bind(work)
    .bind(holder)
    .bind(ttl_us)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// Extends `holder`'s lease on `work` by `ttl_us` from now, if it still holds it (never
/// takes a lease that was given up or taken over); whether it does.
pub async fn keep_lease(conn: &mut AnyConnection, work: &str, holder: &str, ttl_us: i64) -> Result<bool> {
    let kept = sqlx::query(&format!("UPDATE leases SET until = {NOW} + $3 WHERE name = $1 AND holder = $2"))
        .bind(work)
        .bind(holder)
        .bind(ttl_us)
        .execute(&mut *conn)
        .await?;
    Ok(kept.rows_affected() == 1)
}

/// Ends `holder`'s lease on `work` now: the work is free for any replica.
pub async fn release_lease(ex: impl AnyExecutor<'_>, work: &str, holder: &str) -> Result<()> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(work)
        .bind(holder)
        .execute(ex)
        .await?;
    Ok(())
}
