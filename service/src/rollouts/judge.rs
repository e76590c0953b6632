//! The judge's statistics: one guard, one step, base against candidate.
//!
//! A guard fails only when the candidate is worse than the base by more than its margin
//! *and* that is significant at 95 %, one-sided, so noise alone does not roll back:
//! - error rate: a two-proportion z test of `candidate − base > margin`;
//! - cost per call: Welch's t test of `candidate > margin × base` (means of priced calls);
//! - scores: Welch's t test of `base − candidate > margin`;
//! - latency p95: distribution-free: the candidate's p95 at the lower edge of its 95 %
//!   confidence interval (from order statistics) must exceed `margin ×` the base's p95 at
//!   the upper edge of its own.
//!
//! At the end of a step the level is 95 % for the whole rollout: each guard at each step
//! is tested at 5 % divided by the number of guards times judged steps (Bonferroni), so
//! a rollout of an unchanged version is rolled back by noise less than once in twenty
//! even before the margins are counted (with them, almost never). Before the end of a
//! step, once both arms have their samples,
//! the judge looks for a regression at 99.9 % only (an interim look of a group-sequential
//! design), so an overwhelming regression rolls back at once without raising the chance
//! that noise does.

use std::collections::BTreeMap;

use domain::rollout::{Guard, MIN_SCORES, Metric, Outcome, StepArm, plain};
use domain::telemetry::Histogram;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::store::telemetry::{Rollup, ScoreSums};

/// One-sided significance level of a whole rollout's final looks.
pub const FINAL: f64 = 0.05;
/// ... and for a look before the end, which can only roll back.
pub const INTERIM: f64 = 0.001;

/// One arm's evidence in one phase.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub count: i64,
    pub errors: i64,
    pub priced: i64,
    pub cost: f64,
    pub cost_sq: f64,
    pub latency: Histogram,
    /// name -> (count, sum, sum of squares)
    pub scores: BTreeMap<String, (i64, f64, f64)>,
}

impl Evidence {
    pub fn add(&mut self, r: &Rollup) {
        self.count += r.count;
        self.errors += r.errors;
        self.priced += r.priced;
        self.cost += r.cost;
        self.cost_sq += r.cost_sq;
        self.latency.merge(&r.latency);
    }

    pub fn add_score(&mut self, s: &ScoreSums) {
        let e = self.scores.entry(s.name.clone()).or_default();
        e.0 += s.count;
        e.1 += s.sum;
        e.2 += s.sum_sq;
    }

    fn error_rate(&self) -> Option<f64> {
        (self.count > 0).then(|| self.errors as f64 / self.count as f64)
    }

    /// Mean and sample variance of priced calls' cost.
    fn cost_moments(&self) -> Option<(f64, f64, i64)> {
        moments(self.priced, self.cost, self.cost_sq)
    }

    /// The figures people see for this arm.
    pub fn figures(&self) -> StepArm {
        StepArm {
            count: self.count,
            error_rate: self.error_rate(),
            latency_p95: self.latency.quantile(0.95),
            cost_per_call: (self.priced > 0).then(|| self.cost / self.priced as f64),
            scores: self.scores.iter().filter(|(_, s)| s.0 > 0).map(|(n, s)| (n.clone(), s.1 / s.0 as f64)).collect(),
        }
    }
}

fn moments(n: i64, sum: f64, sum_sq: f64) -> Option<(f64, f64, i64)> {
    if n < 2 {
        return None;
    }
    let mean = sum / n as f64;
    let var = ((sum_sq - n as f64 * mean * mean) / (n - 1) as f64).max(0.0);
    Some((mean, var, n))
}

/// What the judge found for one guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub base: Option<f64>,
    pub candidate: Option<f64>,
    pub outcome: Outcome,
    pub p_value: Option<f64>,
    pub message: String,
}

fn normal_tail(z: f64) -> f64 {
    1.0 - Normal::standard().cdf(z)
}

fn z_crit(alpha: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - alpha)
}

/// Welch's one-sided test that `diff` (an estimate with variances `a` + `b` over `na`,
/// `nb` samples) is above 0; the p-value.
fn welch(diff: f64, a: f64, na: i64, b: f64, nb: i64) -> f64 {
    let se2 = a + b;
    if se2 <= 0.0 {
        return if diff > 1e-12 { 0.0 } else { 1.0 };
    }
    let df = se2 * se2 / (a * a / (na - 1) as f64 + b * b / (nb - 1) as f64);
    let t = diff / se2.sqrt();
    match StudentsT::new(0.0, 1.0, df.max(1.0)) {
        Ok(dist) => 1.0 - dist.cdf(t),
        Err(_) => normal_tail(t),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn money(x: f64) -> String {
    format!("${x:.6}").trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn significance(p: f64) -> String {
    if p < 0.001 { "p < 0.001".into() } else { format!("p = {p:.3}") }
}

/// Judges one guard on one step's evidence at one-sided level `alpha`.
pub fn judge(guard: &Guard, base: &Evidence, candidate: &Evidence, alpha: f64) -> Finding {
    let Ok((metric, margin)) = guard.check() else {
        return Finding {
            base: None,
            candidate: None,
            outcome: Outcome::Pass,
            p_value: None,
            message: format!("{}: not a guard this server knows; not judged", guard.metric),
        };
    };
    match metric {
        Metric::ErrorRate => error_rate(base, candidate, margin, alpha),
        Metric::LatencyP95 => latency(base, candidate, margin, alpha),
        Metric::CostPerCall => cost(base, candidate, margin, alpha),
        Metric::Score(name) => score(&name, base, candidate, margin, alpha),
    }
}

fn error_rate(base: &Evidence, cand: &Evidence, margin: f64, alpha: f64) -> Finding {
    let (Some(pb), Some(pc)) = (base.error_rate(), cand.error_rate()) else {
        return insufficient("error rate: no calls in one of the arms".into());
    };
    let diff = pc - pb;
    let se = (pb * (1.0 - pb) / base.count as f64 + pc * (1.0 - pc) / cand.count as f64).sqrt();
    let p = if se > 0.0 {
        normal_tail((diff - margin) / se)
    } else if diff > margin {
        0.0
    } else {
        1.0
    };
    let points = format!("{}-point", plain(margin * 100.0));
    let head = format!("error rate {} vs {}", pct(pc), pct(pb));
    let (outcome, message) = if p < alpha {
        (
            Outcome::Fail,
            format!("{head}: {} points worse, beyond the {points} margin ({})", plain(diff * 100.0), significance(p)),
        )
    } else if diff > margin {
        (
            Outcome::Pass,
            format!("{head}: above the {points} margin, but not significantly ({}), so not a failure", significance(p)),
        )
    } else {
        (Outcome::Pass, format!("{head}, within the {points} margin"))
    };
    Finding { base: Some(pb), candidate: Some(pc), outcome, p_value: Some(p), message }
}

fn latency(base: &Evidence, cand: &Evidence, margin: f64, alpha: f64) -> Finding {
    let (nb, nc) = (base.latency.count(), cand.latency.count());
    let (Some(pb), Some(pc)) = (base.latency.quantile(0.95), cand.latency.quantile(0.95)) else {
        return pass_unjudged("latency (95th percentile): no latency was reported in one of the arms; not compared");
    };
    // Ranks bounding the p95 at 95 % confidence (normal approximation of the binomial).
    let spread = |n: u64| z_crit(alpha) * (n as f64 * 0.95 * 0.05).sqrt();
    let cand_low = cand.latency.at_rank((nc as f64 * 0.95 - spread(nc)).floor().max(1.0) as u64).unwrap_or(pc);
    let base_high = base.latency.at_rank((nb as f64 * 0.95 + spread(nb)).ceil() as u64).unwrap_or(pb);
    let ratio = if pb > 0.0 { pc / pb } else { f64::INFINITY };
    let head = format!("latency p95 {pc:.0} ms vs {pb:.0} ms (×{ratio:.2})");
    let bound = format!("×{}", plain(margin));
    let (outcome, message) = if cand_low > margin * base_high {
        (
            Outcome::Fail,
            format!(
                "{head}: beyond the {bound} margin even at the edges of both {:.1} % confidence intervals ({cand_low:.0} ms vs {base_high:.0} ms)",
                (1.0 - alpha) * 100.0
            ),
        )
    } else if ratio > margin {
        (
            Outcome::Pass,
            format!(
                "{head}: above the {bound} margin, but not beyond the noise of {nc} and {nb} calls, so not a failure"
            ),
        )
    } else {
        (Outcome::Pass, format!("{head}, within the {bound} margin"))
    };
    Finding { base: Some(pb), candidate: Some(pc), outcome, p_value: None, message }
}

fn cost(base: &Evidence, cand: &Evidence, margin: f64, alpha: f64) -> Finding {
    let (Some((mb, vb, nb)), Some((mc, vc, nc))) = (base.cost_moments(), cand.cost_moments()) else {
        return pass_unjudged(
            "cost per call: too few priced calls in one of the arms (is the model in the price table?); not compared",
        );
    };
    let p = welch(mc - margin * mb, vc / nc as f64, nc, margin * margin * vb / nb as f64, nb);
    let ratio = if mb > 0.0 { mc / mb } else { f64::INFINITY };
    let head = format!("cost per call {} vs {} (×{ratio:.2})", money(mc), money(mb));
    let bound = format!("×{}", plain(margin));
    let (outcome, message) = if p < alpha {
        (Outcome::Fail, format!("{head}: beyond the {bound} margin ({})", significance(p)))
    } else if ratio > margin {
        (
            Outcome::Pass,
            format!("{head}: above the {bound} margin, but not significantly ({}), so not a failure", significance(p)),
        )
    } else {
        (Outcome::Pass, format!("{head}, within the {bound} margin"))
    };
    Finding { base: Some(mb), candidate: Some(mc), outcome, p_value: Some(p), message }
}

fn score(name: &str, base: &Evidence, cand: &Evidence, margin: f64, alpha: f64) -> Finding {
    let get = |e: &Evidence| e.scores.get(name).copied().unwrap_or_default();
    let (b, c) = (get(base), get(cand));
    if b.0 < MIN_SCORES || c.0 < MIN_SCORES {
        return insufficient(format!(
            "score '{name}': {} scores on the candidate and {} on the base; {MIN_SCORES} each are needed",
            c.0, b.0
        ));
    }
    let (Some((mb, vb, nb)), Some((mc, vc, nc))) = (moments(b.0, b.1, b.2), moments(c.0, c.1, c.2)) else {
        return insufficient(format!("score '{name}': too few scores"));
    };
    let drop = mb - mc;
    let p = welch(drop - margin, vb / nb as f64, nb, vc / nc as f64, nc);
    let head = format!("score '{name}' {mc:.3} vs {mb:.3}");
    let bound = format!("{}-point", plain(margin));
    let (outcome, message) = if p < alpha {
        (Outcome::Fail, format!("{head}: {drop:.3} lower, beyond the {bound} margin ({})", significance(p)))
    } else if drop > margin {
        (
            Outcome::Pass,
            format!(
                "{head}: lower by more than the {bound} margin, but not significantly ({}), so not a failure",
                significance(p)
            ),
        )
    } else {
        (Outcome::Pass, format!("{head}, within the {bound} margin"))
    };
    Finding { base: Some(mb), candidate: Some(mc), outcome, p_value: Some(p), message }
}

fn insufficient(message: String) -> Finding {
    Finding { base: None, candidate: None, outcome: Outcome::Insufficient, p_value: None, message }
}

fn pass_unjudged(message: &str) -> Finding {
    Finding { base: None, candidate: None, outcome: Outcome::Pass, p_value: None, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(count: i64, errors: i64, latency: impl Fn(i64) -> f64, cost: f64) -> Evidence {
        let mut e = Evidence { count, errors, priced: count, ..Default::default() };
        for i in 0..count {
            e.latency.record(latency(i));
            e.cost += cost;
            e.cost_sq += cost * cost;
        }
        e
    }

    #[test]
    fn error_rate_needs_the_margin_and_significance() {
        let base = calls(400, 2, |_| 100.0, 0.001);
        assert_eq!(
            judge(&Guard::new("error_rate", 0.02), &base, &calls(400, 120, |_| 100.0, 0.001), FINAL).outcome,
            Outcome::Fail
        );
        // 1.5 points worse: within a 2-point margin.
        assert_eq!(
            judge(&Guard::new("error_rate", 0.02), &base, &calls(400, 8, |_| 100.0, 0.001), FINAL).outcome,
            Outcome::Pass
        );
        // 3 points worse on 40 calls: above the margin, not significant.
        // The same overwhelming regression fails an interim look too.
        let bad = calls(400, 120, |_| 100.0, 0.001);
        assert_eq!(judge(&Guard::new("error_rate", 0.02), &base, &bad, INTERIM).outcome, Outcome::Fail);
        let small =
            judge(&Guard::new("error_rate", 0.02), &calls(40, 0, |_| 1.0, 0.0), &calls(40, 2, |_| 1.0, 0.0), FINAL);
        assert_eq!(small.outcome, Outcome::Pass, "{}", small.message);
    }

    #[test]
    fn latency_fails_only_beyond_the_noise() {
        let base = calls(300, 0, |i| 100.0 + (i % 100) as f64, 0.0);
        let slow = calls(300, 0, |i| 200.0 + (i % 100) as f64 * 2.0, 0.0);
        let f = judge(&Guard::new("latency_p95", 1.25), &base, &slow, FINAL);
        assert_eq!(f.outcome, Outcome::Fail, "{}", f.message);
        let same = calls(300, 0, |i| 100.0 + ((i * 7) % 100) as f64, 0.0);
        assert_eq!(judge(&Guard::new("latency_p95", 1.25), &base, &same, FINAL).outcome, Outcome::Pass);
    }

    #[test]
    fn cost_and_scores() {
        let base = calls(200, 0, |_| 1.0, 0.001);
        assert_eq!(
            judge(&Guard::new("cost_per_call", 1.1), &base, &calls(200, 0, |_| 1.0, 0.002), FINAL).outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge(&Guard::new("cost_per_call", 1.1), &base, &calls(200, 0, |_| 1.0, 0.00105), FINAL).outcome,
            Outcome::Pass
        );
        let with = |count: i64, ones: i64| {
            let mut e = Evidence::default();
            e.scores.insert("thumbs_up".into(), (count, ones as f64, ones as f64));
            e
        };
        let g = Guard::new("score:thumbs_up", 0.05);
        assert_eq!(judge(&g, &with(200, 160), &with(200, 80), FINAL).outcome, Outcome::Fail);
        assert_eq!(judge(&g, &with(200, 160), &with(200, 158), FINAL).outcome, Outcome::Pass);
        assert_eq!(judge(&g, &with(200, 160), &with(5, 1), FINAL).outcome, Outcome::Insufficient);
    }
}
