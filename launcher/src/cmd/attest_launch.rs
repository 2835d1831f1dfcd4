//! `cvm launch --attest`: the host side of the evidence exchange (`cvm_attest::exchange`).
//! The launch serves a nonce, watches the console for the guest's `CVM-EVIDENCE` line,
//! and verifies it against the reference values of the plan it launched, the nonce
//! binding, and the policy.

use super::verify::{self, AnyVerdict, Sources};
use crate::error::CliError;
use clap::{Args, ValueEnum};
use cvm_attest::config::{Bytes, Expected};
use cvm_attest::exchange::{self, EvidenceKind, EvidenceLine, LineError, NONCE_LEN};
use cvm_attest::{Category, Check, CheckId, Outcome, Status};
use cvm_firmware::Tee;
use cvm_firmware::plan::{FwCfgFile, LaunchPlan};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with the guest once its evidence has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AfterAttest {
    /// Stop it (the launch ends with the verdict).
    Stop,
    /// Leave it running until it stops or `--timeout`.
    Run,
}

/// The options of `cvm launch --attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// Wait for the guest's evidence (a `CVM-EVIDENCE` line on its console), verify it
    /// against the launched plan, the nonce and the policy, and report the verdict.
    #[arg(long)]
    pub attest: bool,
    /// The nonce, 32 bytes of hex (default: fresh random bytes for every launch).
    #[arg(long, value_name = "HEX", requires = "attest",
          value_parser = super::measure::parse_hex::<32>)]
    pub nonce: Option<[u8; 32]>,
    /// How long to wait for the evidence.
    #[arg(long, value_name = "DURATION", requires = "attest", default_value = "60s",
          value_parser = super::launch::parse_timeout)]
    pub attest_timeout: Duration,
    /// Stop the guest once its evidence has come, or leave it running.
    #[arg(long, value_enum, requires = "attest", default_value_t = AfterAttest::Run)]
    pub after_attest: AfterAttest,
    /// Save the evidence (the raw report or quote) to FILE.
    #[arg(long, value_name = "FILE", requires = "attest")]
    pub evidence_out: Option<PathBuf>,
    /// The verification policy (`cvm verify --policy`'s format).
    #[arg(long = "policy", value_name = "FILE", requires = "attest")]
    pub verify_policy: Option<PathBuf>,
    /// SNP: AMD's CRL (as `cvm verify --crl`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "attest",
        conflicts_with = "no_crl"
    )]
    pub crl: Option<PathBuf>,
    /// SNP: accept a chain whose revocation is not checked (as `cvm verify --no-crl`).
    #[arg(long, requires = "attest")]
    pub no_crl: bool,
    /// Also trust this root certificate (as `cvm verify --root`).
    #[arg(long, value_name = "FILE", requires = "attest")]
    pub root: Vec<PathBuf>,
    /// TDX: Intel's collateral (as `cvm verify --collateral`).
    #[arg(long, value_name = "FILE|DIR", requires = "attest")]
    pub collateral: Option<PathBuf>,
    /// CCA: trust this CPAK, JWK or PEM/DER public key (as `cvm verify --cpak`).
    #[arg(long, value_name = "FILE", requires = "attest")]
    pub cpak: Vec<PathBuf>,
    /// CCA: trust the CPAKs of this trust-anchor store (as `cvm verify --tastore`).
    #[arg(long, value_name = "FILE", requires = "attest")]
    pub tastore: Vec<PathBuf>,
    /// The verification time, RFC 3339 UTC (default: now), as `cvm verify --at`.
    #[arg(long, value_name = "RFC3339", requires = "attest")]
    pub at: Option<String>,
}

/// What the console watch collected.
#[derive(Debug, Default)]
struct Collected {
    /// The first decodable evidence line.
    first: Option<EvidenceLine>,
    /// Lines after it (ignored).
    repeated: usize,
    /// Malformed lines (ignored), with why.
    malformed: Vec<String>,
}

/// A verdict and the launch result it makes.
pub type Verdict = (AttestReport, Result<(), CliError>);

/// One launch's exchange.
#[derive(Debug)]
pub struct Session {
    /// The nonce served to the guest.
    pub nonce: [u8; NONCE_LEN],
    collected: Arc<Mutex<Collected>>,
    /// `--after-attest run`: the verdict made while the guest ran on.
    early: Mutex<Option<Result<Verdict, CliError>>>,
}

impl Session {
    /// A session with `--nonce` or a fresh random nonce.
    pub fn new(args: &AttestArgs) -> Result<Self, CliError> {
        let nonce = match args.nonce {
            Some(n) => n,
            None => {
                let mut n = [0u8; NONCE_LEN];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n)
                    .map_err(|_| CliError::Usage("no random bytes for the nonce".into()))?;
                n
            }
        };
        Ok(Session {
            nonce,
            collected: Arc::default(),
            early: Mutex::new(None),
        })
    }

    /// Keeps the verdict made while the guest ran on.
    pub fn set_early(&self, v: Result<Verdict, CliError>) {
        if let Ok(mut e) = self.early.lock() {
            *e = Some(v);
        }
    }

    /// The verdict made while the guest ran on, if there is one.
    pub fn take_early(&self) -> Option<Result<Verdict, CliError>> {
        self.early.lock().ok().and_then(|mut e| e.take())
    }

    /// `plan` with the nonce served as fw_cfg file `opt/cvm/nonce`. No firmware measures
    /// that file (it is not among the items TDVF measures), so the launch measurement
    /// does not depend on the nonce; the evidence carries it in its report data.
    pub fn serve<'a>(&self, plan: &LaunchPlan<'a>) -> LaunchPlan<'a> {
        let mut plan = plan.clone();
        plan.fw_cfg.files.push(FwCfgFile {
            name: exchange::NONCE_FILE,
            data: Cow::Owned(self.nonce.to_vec()),
        });
        plan
    }

    /// The console watch for the VMM; `arrived` hears of the first decodable line.
    pub fn watch(
        &self,
        args: &AttestArgs,
        arrived: Option<std::sync::mpsc::Sender<()>>,
    ) -> crate::vmm::AttestWatch {
        let collected = Arc::clone(&self.collected);
        let stop = args.after_attest == AfterAttest::Stop;
        crate::vmm::AttestWatch {
            on_line: Box::new(move |line: Result<EvidenceLine, LineError>| {
                let Ok(mut c) = collected.lock() else {
                    return false;
                };
                match line {
                    Err(e) => {
                        tracing::warn!("guest: {e} (ignored)");
                        c.malformed.push(e.to_string());
                        false
                    }
                    Ok(_) if c.first.is_some() => {
                        tracing::warn!("guest: another CVM-EVIDENCE line (ignored)");
                        c.repeated = c.repeated.saturating_add(1);
                        false
                    }
                    Ok(l) => {
                        tracing::info!(
                            "guest: {} evidence, {} bytes",
                            l.kind.name(),
                            l.evidence.len()
                        );
                        c.first = Some(l);
                        if let Some(tx) = &arrived {
                            let _ = tx.send(());
                        }
                        stop
                    }
                }
            }),
            timeout: args.attest_timeout,
        }
    }
}

/// What the launch report carries of the exchange.
#[derive(Debug, serde::Serialize)]
pub struct AttestReport {
    /// The nonce, hex.
    pub nonce: String,
    /// REPORT_DATA / REPORTDATA the evidence must carry, hex.
    pub report_data: String,
    /// The evidence type the guest sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<&'static str>,
    /// Malformed lines that were ignored.
    pub malformed_lines: Vec<String>,
    /// Evidence lines after the first, ignored.
    pub repeated_lines: usize,
    /// TDX: what became of the guest's event log (the line's auxiliary data): how many
    /// events it has, or why it was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log: Option<String>,
    /// The verdict, as `cvm verify --format json` gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<AnyVerdict>,
}

/// The reference values a launch of `plan` on `tee` determines (SNP: the measurement and
/// HOST_DATA; TDX: MRTD, the RTMRs the plan predicts and the owner's registers), with the
/// nonce binding.
pub struct LaunchReference {
    /// SNP: MEASUREMENT.
    pub snp_measurement: Option<[u8; 48]>,
    /// SNP: HOST_DATA.
    pub host_data: Option<[u8; 32]>,
    /// TDX: the plan's event log: MRTD, the RTMRs it determines, the owner's registers,
    /// and the events a guest's log is compared with.
    pub tdx: Option<cvm_firmware::measure::tdx::EventLog>,
}

/// Verifies what the guest sent; returns the report part and the launch's result.
pub fn verdict(
    args: &AttestArgs,
    certs: Option<&std::path::Path>,
    tee: Tee,
    session: &Session,
    reference: &LaunchReference,
) -> Result<Verdict, CliError> {
    let collected = session
        .collected
        .lock()
        .map_err(|_| CliError::Usage("the console watch failed".into()))?;
    let binding = exchange::report_data(&session.nonce);
    let mut report = AttestReport {
        nonce: hex::encode(session.nonce),
        report_data: hex::encode(binding),
        evidence: collected.first.as_ref().map(|l| l.kind.name()),
        malformed_lines: collected.malformed.clone(),
        repeated_lines: collected.repeated,
        event_log: None,
        verdict: None,
    };
    let Some(line) = &collected.first else {
        let why = match collected.malformed.first() {
            Some(e) => format!("the guest sent no valid evidence (first malformed line: {e})"),
            None => "the guest sent no CVM-EVIDENCE line".to_owned(),
        };
        return Ok((report, Err(CliError::GuestExit(why))));
    };
    save_evidence(args, &line.evidence)?;
    let src = Sources {
        certs,
        crl: args.crl.as_deref(),
        no_crl: args.no_crl,
        root: &args.root,
        collateral: args.collateral.as_deref(),
        event_log: None,
        plan_log: None,
        policy: args.verify_policy.as_deref(),
    };
    let at = verify::at_or_now(args.at.as_deref())?;
    let mut v = match line.kind {
        EvidenceKind::Snp => {
            let mut r = verify::snp_reference_skip();
            r.report_data = Expected::value(Bytes(binding));
            if let Some(m) = reference.snp_measurement {
                r.measurement = Expected::value(Bytes(m));
            }
            if let Some(h) = reference.host_data {
                r.host_data = Expected::value(Bytes(h));
            }
            // Without --certs, the certificates the guest sent with its report.
            let supplied = match (certs, &line.aux) {
                (None, Some(table)) => Some(supplied_from_table(table)?),
                _ => None,
            };
            let inputs = verify::snp_inputs(&src, Some(r), supplied)?;
            verify::verify_snp(&inputs, &line.evidence, at)
        }
        EvidenceKind::Tdx => {
            let mut r = verify::tdx_reference_skip();
            r.report_data = Expected::value(Bytes(binding));
            if let Some(plan) = &reference.tdx {
                verify::plan_values(&plan.values, &mut r);
            }
            let mut inputs = verify::tdx_inputs(&src, Some(r))?;
            // The guest's firmware log, if it sent one: replayed against the quote, and
            // compared with the plan's events where a register departs.
            if let Some(aux) = &line.aux {
                match cvm_attest::eventlog::GuestLog::parse(aux) {
                    Ok(g) => {
                        report.event_log = Some(format!(
                            "{} events ({} bytes) replayed",
                            g.events.len(),
                            g.len
                        ));
                        inputs.set_event_log(cvm_attest::eventlog::AnyLog::Guest(g));
                    }
                    Err(e) => report.event_log = Some(format!("not read: {e}")),
                }
            }
            inputs.plan_log = reference.tdx.clone();
            verify::verify_tdx(&inputs, &line.evidence, at)
        }
        EvidenceKind::Cca => {
            return Ok((
                report,
                Err(CliError::Usage(format!(
                    "the guest sent a CCA token, which a --tee {tee} launch cannot produce (realm \
                     launches have no attestation exchange yet; verify tokens with cvm verify \
                     --tee cca)"
                ))),
            ));
        }
    };
    let launched_kind = match tee {
        Tee::Snp => Some(EvidenceKind::Snp),
        Tee::Tdx => Some(EvidenceKind::Tdx),
        _ => None,
    };
    let check = if tee == Tee::None {
        Err(
            "an unprotected launch (--tee none) has no reference values: this verdict can \
             never pass"
                .to_owned(),
        )
    } else if launched_kind != Some(line.kind) {
        Err(format!(
            "the guest of a --tee {tee} launch sent {} evidence",
            line.kind.name()
        ))
    } else {
        Ok(format!(
            "the reference values of the --tee {tee} plan launched"
        ))
    };
    v.add_check(CheckId::LaunchReference, Category::Policy, check);
    let result = v.result();
    report.verdict = Some(v);
    Ok((report, result))
}

/// `--evidence-out`: the raw evidence saved, if asked for.
pub fn save_evidence(args: &AttestArgs, evidence: &[u8]) -> Result<(), CliError> {
    match &args.evidence_out {
        Some(path) => std::fs::write(path, evidence).map_err(|source| CliError::WriteFile {
            path: path.clone(),
            source,
        }),
        None => Ok(()),
    }
}

/// The certificates of an SNP certificate table (the guest's auxiliary data).
fn supplied_from_table(table: &[u8]) -> Result<cvm_attest::snp::certs::Supplied, CliError> {
    use cvm_attest::snp::cert_table::{Kind, parse};
    let bad = |e: String| CliError::Evidence {
        path: PathBuf::from("the guest's certificate table"),
        source: crate::error::InputError::Other(e),
    };
    let entries = parse(table).map_err(|e| bad(e.to_string()))?;
    let named: Vec<(&str, &[u8])> = entries
        .iter()
        .filter_map(|e| {
            let name = match e.kind {
                Kind::Vcek => "vcek.der",
                Kind::Vlek => "vlek.der",
                Kind::Ask => "ask.der",
                Kind::Ark => "ark.der",
                _ => return None,
            };
            Some((name, e.data))
        })
        .collect();
    cvm_attest::snp::certs::Supplied::from_files(&named)
        .map(|(s, _)| s)
        .map_err(|e| bad(e.to_string()))
}

impl AnyVerdict {
    /// The launch's result: the first failed check's rejection, if any.
    pub(super) fn result(&self) -> Result<(), CliError> {
        match self.failure() {
            None => Ok(()),
            Some((category, first)) => Err(CliError::Rejected { category, first }),
        }
    }

    /// Records one more check and updates the verdict.
    pub(super) fn add_check(
        &mut self,
        name: CheckId,
        category: Category,
        result: Result<String, String>,
    ) {
        fn push<C>(
            v: &mut cvm_attest::Verdict<C>,
            name: CheckId,
            category: Category,
            result: Result<String, String>,
        ) {
            let (outcome, reason) = match result {
                Ok(r) => (Outcome::Pass, r),
                Err(r) => (Outcome::Fail, r),
            };
            v.checks.push(Check {
                name,
                outcome,
                category,
                reason,
            });
            if outcome == Outcome::Fail {
                v.verdict = Status::Fail;
            }
        }
        match self {
            AnyVerdict::Snp(v) => push(&mut v.0, name, category, result),
            AnyVerdict::Tdx(v) => push(&mut v.0, name, category, result),
            AnyVerdict::Cca(v) => push(&mut v.0, name, category, result),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        attest: AttestArgs,
    }

    #[test]
    fn the_first_line_counts_and_later_ones_are_ignored() {
        let cli = Cli::parse_from([
            "x",
            "--attest",
            "--after-attest",
            "stop",
            "--nonce",
            &"ab".repeat(32),
        ]);
        let session = Session::new(&cli.attest).unwrap();
        assert_eq!(session.nonce, [0xab; 32]);
        let mut watch = session.watch(&cli.attest, None);
        let line = |e: &[u8]| {
            Ok(EvidenceLine {
                kind: EvidenceKind::Snp,
                evidence: e.to_vec(),
                aux: None,
            })
        };
        assert!(!(watch.on_line)(Err(LineError::TooLong)));
        assert!((watch.on_line)(line(b"first")), "--after-attest stop stops");
        assert!(!(watch.on_line)(line(b"second")));
        let c = session.collected.lock().unwrap();
        assert_eq!(c.first.as_ref().unwrap().evidence, b"first");
        assert_eq!((c.repeated, c.malformed.len()), (1, 1));
    }
}
