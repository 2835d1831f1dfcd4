//! The result of a verification: pass or fail, with every check and its reason.

use crate::time::Time;
use serde::Serialize;

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check passed (skipped checks were skipped on purpose).
    Pass,
    /// At least one check failed.
    Fail,
}

/// What kind of failure a check reports; pipelines branch on it (through exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// The evidence is not well-formed (lengths, versions, must-be-zero fields).
    Malformed,
    /// A signature, certificate or chain is invalid (including expired or revoked).
    Signature,
    /// Collateral needed to decide is missing (no VCEK, no ASVK, ...).
    Collateral,
    /// The claims do not satisfy the reference values or the policy.
    Policy,
}

impl Category {
    /// Severity, most severe first: a bad signature outranks malformed fields, which
    /// outrank missing collateral, which outranks policy.
    pub fn rank(self) -> u8 {
        match self {
            Category::Signature => 0,
            Category::Malformed => 1,
            Category::Collateral => 2,
            Category::Policy => 3,
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Checked and satisfied.
    Pass,
    /// Checked and not satisfied.
    Fail,
    /// Not checked, on purpose (named in the reason).
    Skipped,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable dotted name, e.g. `report.signature`, `chain.vcek`, `policy.debug`.
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
    /// The kind of failure this check reports.
    pub category: Category,
    /// Why: what was compared with what.
    pub reason: String,
}

/// The verdict on one piece of evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict<C> {
    /// Pass only if no check failed.
    pub verdict: Status,
    /// The TEE ("snp", ...).
    pub tee: &'static str,
    /// The product ("Milan", "Genoa", "Turin", ...), when known.
    pub product: Option<String>,
    /// The time the certificates and collateral were judged at.
    pub verification_time: Time,
    /// Every check, in the order made.
    pub checks: Vec<Check>,
    /// The decoded claims (present whenever the evidence could be parsed; they are
    /// trustworthy only when the verdict is pass).
    pub claims: Option<C>,
}

impl<C> Verdict<C> {
    /// The verdict of `checks`: pass only if none failed.
    pub fn new(
        checks: Checks,
        tee: &'static str,
        product: Option<String>,
        claims: Option<C>,
        at: Time,
    ) -> Self {
        Verdict {
            verdict: if checks.any_failed() {
                Status::Fail
            } else {
                Status::Pass
            },
            tee,
            product,
            verification_time: at,
            checks: checks.0,
            claims,
        }
    }

    /// The checks that failed, in the order made.
    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// The most severe failure category, if any check failed: a bad signature outranks
    /// malformed fields, which outrank missing collateral, which outranks policy.
    pub fn failure(&self) -> Option<Category> {
        self.failed_checks()
            .map(|c| c.category)
            .min_by_key(|c| c.rank())
    }
}

/// Collects checks.
#[derive(Debug, Default)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    /// Records a check.
    pub fn record(
        &mut self,
        name: &str,
        category: Category,
        result: Result<String, String>,
    ) -> bool {
        let (outcome, reason) = match result {
            Ok(r) => (Outcome::Pass, r),
            Err(r) => (Outcome::Fail, r),
        };
        self.0.push(Check {
            name: name.to_owned(),
            outcome,
            category,
            reason,
        });
        outcome == Outcome::Pass
    }

    /// Records a check skipped on purpose.
    pub fn skip(&mut self, name: &str, category: Category, reason: &str) {
        self.0.push(Check {
            name: name.to_owned(),
            outcome: Outcome::Skipped,
            category,
            reason: reason.to_owned(),
        });
    }

    /// Whether any check failed so far.
    pub fn any_failed(&self) -> bool {
        self.0.iter().any(|c| c.outcome == Outcome::Fail)
    }
}
