//! Leases on background work that runs once across replicas (PostgreSQL).

use sqlx::{AnyConnection, AnyExecutor};

use crate::error::Result;

/// Takes or renews the lease on `work` for `holder`, for `ttl_us` from the database's
/// clock (replicas' clocks may disagree; the database's is one); whether it is held.
pub async fn take_lease(conn: &mut AnyConnection, work: &str, holder: &str, ttl_us: i64) -> Result<bool> {
    let now: i64 = sqlx::query_scalar("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)")
        .fetch_one(&mut *conn)
        .await?;
    let held: Option<String> = sqlx::query_scalar(
        "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until < $4
         RETURNING holder",
    )
    .bind(work)
    .bind(holder)
    .bind(now + ttl_us)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// Ends `holder`'s lease on `work` now.
pub async fn release_lease(ex: impl AnyExecutor<'_>, work: &str, holder: &str) -> Result<()> {
    sqlx::query("UPDATE leases SET until = 0 WHERE name = $1 AND holder = $2")
        .bind(work)
        .bind(holder)
        .execute(ex)
        .await?;
    Ok(())
}
