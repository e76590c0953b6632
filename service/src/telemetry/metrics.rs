//! Per-version metrics of a prompt over a period, and as a time series, summed from the
//! five-minute rollups (never from raw generations, so a million calls cost the same as
//! a hundred). Percentiles come from the rollups' histograms, within 1 %.

use std::collections::BTreeMap;

use domain::access::Action;
use domain::telemetry::{Interval, MetricsView, ScoreStat, SeriesPoint, VersionMetrics};

use super::BUCKET_US;
use crate::store::telemetry::{self as sql, Rollup};
use crate::{Principal, Registry, Result, ServiceError, time};

const DAY_US: i64 = 86_400_000_000;
/// A time series has at most this many intervals.
const MAX_POINTS: i64 = 5000;

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn per_call(r: &Rollup) -> Option<f64> {
    (r.priced > 0).then(|| r.cost / r.priced as f64)
}

pub(crate) fn version_metrics(version: i64, r: &Rollup) -> VersionMetrics {
    VersionMetrics {
        version,
        count: r.count,
        errors: r.errors,
        error_rate: rate(r.errors, r.count),
        latency_ms: r.latency.percentiles(),
        ttft_ms: r.ttft.percentiles(),
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cost: r.cost,
        cost_per_call: per_call(r),
        unpriced: r.unpriced,
        scores: BTreeMap::new(),
        drift: r.drift_hash + r.drift_stale,
        drift_hash_mismatch: r.drift_hash,
        drift_stale_label: r.drift_stale,
    }
}

impl Registry {
    /// `GET /api/v1/prompts/{name}/metrics`: `since`/`until` default to the last 24 hours,
    /// `interval` to `1h`.
    pub async fn metrics(
        &self,
        who: &Principal,
        prompt: &str,
        since: Option<&str>,
        until: Option<&str>,
        interval: Option<&str>,
    ) -> Result<MetricsView> {
        who.require(Action::Read)?;
        self.entry(prompt)?;
        let interval = match interval {
            None => Interval::Hour,
            Some(i) => Interval::parse(i)
                .ok_or_else(|| ServiceError::BadRequest(format!("`interval` must be 5m, 1h or 1d (got '{i}')")))?,
        };
        let until = time::parse_param("until", until)?.unwrap_or_else(time::now_us);
        let since = time::parse_param("since", since)?.unwrap_or(until - DAY_US);
        if since >= until {
            return Err(ServiceError::BadRequest("`since` must be before `until`".into()));
        }
        let step = interval.micros();
        if (until - since) / step > MAX_POINTS {
            return Err(ServiceError::BadRequest(format!(
                "that period has more than {MAX_POINTS} intervals of {}; choose a longer interval or a shorter period",
                interval.as_str()
            )));
        }
        // Whole five-minute buckets: a period starting mid-bucket includes that bucket.
        let from = since - since.rem_euclid(BUCKET_US);
        let reader = &self.telemetry_store().reader;
        let rows = sql::rollups(reader, prompt, from, until).await?;
        let mut per_version: BTreeMap<i64, Rollup> = BTreeMap::new();
        let mut per_point: BTreeMap<(i64, i64), Rollup> = BTreeMap::new();
        for (version, bucket, r) in &rows {
            per_version.entry(*version).or_default().merge(r);
            per_point.entry((bucket - bucket.rem_euclid(step), *version)).or_default().merge(r);
        }
        let mut versions: BTreeMap<i64, VersionMetrics> =
            per_version.iter().map(|(v, r)| (*v, version_metrics(*v, r))).collect();
        for (version, name, count, sum) in sql::score_totals(reader, prompt, from, until).await? {
            let m = versions.entry(version).or_insert_with(|| VersionMetrics { version, ..Default::default() });
            m.scores.insert(name, ScoreStat { count, mean: if count > 0 { sum / count as f64 } else { 0.0 } });
        }
        let series = per_point
            .iter()
            .map(|((start, version), r)| SeriesPoint {
                start: time::format_us(*start),
                version: *version,
                count: r.count,
                errors: r.errors,
                error_rate: rate(r.errors, r.count),
                latency_p50_ms: r.latency.quantile(0.5),
                latency_p95_ms: r.latency.quantile(0.95),
                cost: r.cost,
                cost_per_call: per_call(r),
                drift: r.drift_hash + r.drift_stale,
            })
            .collect();
        Ok(MetricsView {
            prompt: prompt.to_owned(),
            since: time::format_us(since),
            until: time::format_us(until),
            interval: interval.as_str().to_owned(),
            // Newest version first: the one people ask about.
            versions: versions.into_values().rev().collect(),
            series,
        })
    }
}
