//! `cvm verify`: verify attestation evidence and appraise it; exit 0 only for a pass.

use super::plan_args;
use super::{CmdResult, InputKind, read_file};
use crate::error::{CliError, InputError};
use crate::output::{Output, Render};
use crate::tee_arg::TeeChoice;
use clap::Args;
use cvm_attest::config::{Bytes, Expected};
use cvm_attest::snp::appraise::{Policy, Reference};
use cvm_attest::snp::certs::{Roots, Supplied};
use cvm_attest::tdx;
use cvm_attest::x509::{Cert, Crl};
use cvm_attest::{Category, Outcome, Status, Time, Verdict};
use cvm_firmware::Tee;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Arguments of `cvm verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("refs").required(true).multiple(true)
    .args(["reference", "no_reference", "plan_log"])))]
pub struct VerifyArgs {
    /// The evidence type.
    #[arg(long, value_name = "TEE", default_value_t = TeeChoice::Auto,
          value_parser = crate::tee_arg::auto_or(&crate::tee_arg::EVIDENCE))]
    pub tee: TeeChoice,
    /// The evidence file (SNP: the raw report; TDX: the raw quote). Repeat it to verify
    /// a batch in one process with the same certificates, collateral, reference values
    /// and policy (verified chains and collateral are reused across the batch).
    #[arg(long, value_name = "FILE", required = true)]
    pub evidence: Vec<PathBuf>,
    /// SNP: directory of certificates, by role: vcek or vlek, ask or asvk, and optionally
    /// ark (.der, .pem, .crt). AMD's ARKs (and ASKs) are built in.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// SNP: AMD's ARK-signed CRL (DER or PEM) for the product, revoking ASKs/ASVKs.
    /// Without it (or --no-crl) the verdict fails for want of collateral.
    #[arg(long, value_name = "FILE", conflicts_with = "no_crl")]
    pub crl: Option<PathBuf>,
    /// SNP: accept a chain whose revocation is not checked (sets the policy's
    /// allow_unchecked_revocation; the verdict says so).
    #[arg(long)]
    pub no_crl: bool,
    /// Also trust this root certificate (an AMD ARK, or an Intel root, that is not
    /// built in: a test or pre-production PKI). Repeatable; never needed for AMD's or
    /// Intel's production roots.
    #[arg(long, value_name = "FILE")]
    pub root: Vec<PathBuf>,
    /// TDX: Intel's collateral for the quote's platform: a JSON bundle (CRLs, TCB Info,
    /// QE Identity, issuer chains) or a directory of the pieces as Intel PCS serves them.
    /// Without it the verdict fails for want of collateral. Any evidence: an offline
    /// bundle (`cvm collateral bundle`, a tar file), verified again as it is used.
    #[arg(long, value_name = "FILE|DIR")]
    pub collateral: Option<PathBuf>,
    /// TDX: an event log to replay against the RTMRs: the guest's firmware log (the
    /// TCG crypto-agile format of the CCEL table, as `cvm guest attest` sends it) or a
    /// `cvm measure --tee tdx --event-log-out` file.
    #[arg(long, value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// TDX: the plan's events (`cvm measure --tee tdx --event-log-out`). Its MRTD and the
    /// RTMRs it determines are reference values (where --reference gives none), and with a
    /// guest's --event-log the verdict says, for each RTMR, which of the guest's events
    /// depart from the plan's and how.
    #[arg(long, value_name = "FILE")]
    pub plan_log: Option<PathBuf>,
    /// CCA: a trusted CPAK (the platform attestation key), as a JWK or a PEM/DER public
    /// key, trusted for any platform. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub cpak: Vec<PathBuf>,
    /// CCA: a trust-anchor store (a JSON list of `{"pkey": JWK, "implementation-id": hex,
    /// "instance-id": hex}`): each CPAK is trusted for its platform only. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub tastore: Vec<PathBuf>,
    /// Fetch what the evidence needs and no option gives, from the vendors' services,
    /// verified before it is used: SNP, the VCEK, ASK, ARK and CRL from AMD's KDS (a
    /// VLEK's chain and CRL, with the VLEK from --certs) where --certs or --crl do not
    /// give them; TDX and SGX, the TCB Info, QE Identity and CRLs from Intel's PCS (or a
    /// PCCS) where --collateral does not. `cvm collateral fetch` describes how.
    #[arg(long)]
    pub fetch: bool,
    /// With --fetch: keep what was fetched in DIR and use entries still valid at --at.
    #[arg(long, value_name = "DIR", requires = "fetch")]
    pub cache: Option<PathBuf>,
    /// With --fetch: the KDS's base URL.
    #[arg(long, value_name = "URL", requires = "fetch",
          default_value = super::collateral::KDS_URL)]
    pub kds_url: String,
    /// With --fetch: Intel PCS's base URL, or a PCCS's.
    #[arg(long, value_name = "URL", requires = "fetch",
          default_value = super::collateral::PCS_URL)]
    pub pcs_url: String,
    /// With --fetch: where the Intel SGX Root CA's CRL is (default: Intel's for Intel's
    /// PCS, the PCCS's otherwise).
    #[arg(long, value_name = "URL", requires = "fetch")]
    pub intel_root_crl_url: Option<String>,
    /// With --fetch: which of Intel's TCB evaluations to fetch the TCB Info and QE
    /// Identity for: `standard`, `early`, or a TCB evaluation data number.
    #[arg(long, value_name = "standard|early|N", requires = "fetch")]
    pub tcb_update: Option<super::collateral::TcbUpdate>,
    /// With --fetch: the product, for reports that do not name it.
    #[arg(long, value_name = "Milan|Genoa|Turin", requires = "fetch",
          value_parser = super::collateral::parse_product)]
    pub product: Option<cvm_attest::snp::tcb::Product>,
    /// With --fetch: how long one request may take.
    #[arg(long, value_name = "DURATION", requires = "fetch", default_value = "30s",
          value_parser = super::collateral::parse_seconds)]
    pub fetch_timeout: std::time::Duration,
    /// The verification time, RFC 3339 UTC (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Reference values (TOML, JSON, or `cvm measure --format json` output).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Check authenticity only: compare no reference values.
    #[arg(long, conflicts_with_all = ["reference", "plan_log"])]
    pub no_reference: bool,
    /// The policy (TOML or JSON; default: the documented default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// REPORT_DATA (TDX: REPORTDATA) must be exactly this (64 bytes of hex, e.g. a nonce).
    #[arg(long, value_name = "HEX")]
    pub report_data: Option<String>,
}

/// The claims a text verdict shows first.
pub trait Headline {
    /// (label, value) pairs.
    fn headline(&self) -> Vec<(&'static str, String)>;
}

impl Headline for cvm_attest::snp::claims::Claims {
    fn headline(&self) -> Vec<(&'static str, String)> {
        vec![
            ("measurement", self.measurement.clone()),
            ("report data", self.report_data.clone()),
        ]
    }
}

impl Headline for tdx::claims::Claims {
    fn headline(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(td) = &self.td {
            out.push(("mrtd", td.mr_td.clone()));
            for (label, r) in ["rtmr0", "rtmr1", "rtmr2", "rtmr3"]
                .into_iter()
                .zip(&td.rtmr)
            {
                out.push((label, r.clone()));
            }
            out.push(("report data", td.report_data.clone()));
        }
        if let Some(e) = &self.enclave {
            out.push(("mrenclave", e.mr_enclave.clone()));
            out.push(("mrsigner", e.mr_signer.clone()));
            out.push(("report data", e.report_data.clone()));
        }
        if let Some(t) = &self.tcb {
            let advisories = if t.status.advisory_ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.status.advisory_ids.join(", "))
            };
            out.push(("tcb status", format!("{}{advisories}", t.status.status)));
        }
        out
    }
}

impl Headline for cvm_attest::cca::claims::Claims {
    fn headline(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("rim", hex::encode(&self.realm.rim.0))];
        for (label, r) in ["rem0", "rem1", "rem2", "rem3"]
            .into_iter()
            .zip(&self.realm.rems)
        {
            out.push((label, hex::encode(&r.0)));
        }
        out.push(("rpv", hex::encode(&self.realm.personalization_value.0)));
        out.push(("challenge", hex::encode(&self.realm.challenge.0)));
        out.push((
            "lifecycle",
            format!(
                "{:#06x} ({})",
                self.platform.lifecycle, self.platform.lifecycle_name
            ),
        ));
        out
    }
}

/// The verdict as `cvm verify` prints it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct VerifyReport<C>(pub Verdict<C>);

impl<C: Headline + Serialize> Render for VerifyReport<C> {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let v = &self.0;
        let status = match v.verdict {
            Status::Pass => "pass",
            Status::Fail => "fail",
        };
        writeln!(out, "verdict: {status}")?;
        writeln!(
            out,
            "tee:     {} ({})",
            v.tee,
            v.product.as_deref().unwrap_or("product unknown")
        )?;
        writeln!(out, "time:    {}", v.verification_time)?;
        for (label, value) in v.claims.iter().flat_map(Headline::headline) {
            writeln!(out, "{label}: {value}")?;
        }
        for c in &v.checks {
            let tag = match c.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::Skipped => "skip",
            };
            writeln!(out, "  [{tag}] {}: {}", c.name, c.reason)?;
        }
        if !v.departures.is_empty() {
            writeln!(out, "where the guest's event log departs from the plan:")?;
            for d in &v.departures {
                writeln!(out, "  {d}")?;
                for (who, side) in [("guest", &d.guest), ("plan", &d.plan)] {
                    if let Some(s) = side {
                        writeln!(out, "    {who:5} {}  {}", s.digest, s.description)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One verdict, of either TEE.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AnyVerdict {
    /// An SNP report's.
    Snp(Box<VerifyReport<cvm_attest::snp::claims::Claims>>),
    /// A DCAP quote's.
    Tdx(Box<VerifyReport<tdx::claims::Claims>>),
    /// A CCA token's.
    Cca(Box<VerifyReport<cvm_attest::cca::claims::Claims>>),
}

impl AnyVerdict {
    /// The most severe failure and the first failed check, if any check failed.
    pub(crate) fn failure(&self) -> Option<(Category, String)> {
        fn first<C>(v: &Verdict<C>) -> Option<(Category, String)> {
            v.failure().zip(
                v.failed_checks()
                    .next()
                    .map(|c| format!("{}: {}", c.name, c.reason)),
            )
        }
        match self {
            AnyVerdict::Snp(v) => first(&v.0),
            AnyVerdict::Tdx(v) => first(&v.0),
            AnyVerdict::Cca(v) => first(&v.0),
        }
    }
}

impl AnyVerdict {
    /// Logs each check as it was decided (debug level) and the verdict (info level).
    fn log(&self, path: &Path) {
        fn each<C>(v: &Verdict<C>, path: &Path) {
            for c in &v.checks {
                tracing::debug!(
                    "{}: {} {:?}: {}",
                    path.display(),
                    c.name,
                    c.outcome,
                    c.reason
                );
            }
            let failed = v.failed_checks().count();
            tracing::info!(
                "{}: {} verdict {:?} ({} checks, {failed} failed)",
                path.display(),
                v.tee,
                v.verdict,
                v.checks.len()
            );
        }
        match self {
            AnyVerdict::Snp(v) => each(&v.0, path),
            AnyVerdict::Tdx(v) => each(&v.0, path),
            AnyVerdict::Cca(v) => each(&v.0, path),
        }
    }
}

impl Render for AnyVerdict {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            AnyVerdict::Snp(v) => v.render_text(out),
            AnyVerdict::Tdx(v) => v.render_text(out),
            AnyVerdict::Cca(v) => v.render_text(out),
        }
    }
}

/// One verdict of a batch.
#[derive(Debug, Serialize)]
pub struct BatchItem {
    /// The evidence file.
    pub evidence: PathBuf,
    /// Its verdict.
    #[serde(flatten)]
    pub verdict: AnyVerdict,
}

/// The verdicts of a batch (`--evidence` given more than once), in order.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    /// Pass only if every verdict passes.
    pub verdict: Status,
    /// Every verdict.
    pub verdicts: Vec<BatchItem>,
}

impl Render for BatchReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for item in &self.verdicts {
            writeln!(out, "== {}", item.evidence.display())?;
            item.verdict.render_text(out)?;
        }
        let passed = self
            .verdicts
            .iter()
            .filter(|i| i.verdict.failure().is_none())
            .count();
        writeln!(out, "{passed} of {} passed", self.verdicts.len())
    }
}

/// Where a verification's certificates, collateral and policy come from: `cvm verify`'s
/// options, or `cvm launch --attest`'s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    /// SNP: the certificates directory.
    pub certs: Option<&'a Path>,
    /// SNP: the CRL.
    pub crl: Option<&'a Path>,
    /// SNP: accept unchecked revocation.
    pub no_crl: bool,
    /// Extra trusted roots.
    pub root: &'a [PathBuf],
    /// TDX: the collateral.
    pub collateral: Option<&'a Path>,
    /// TDX: an event log to replay.
    pub event_log: Option<&'a Path>,
    /// TDX: the plan's events, for explaining a guest's log.
    pub plan_log: Option<&'a Path>,
    /// The policy file.
    pub policy: Option<&'a Path>,
}

impl<'a> Sources<'a> {
    fn of(args: &'a VerifyArgs) -> Self {
        Sources {
            certs: args.certs.as_deref(),
            crl: args.crl.as_deref(),
            no_crl: args.no_crl,
            root: &args.root,
            collateral: args.collateral.as_deref(),
            event_log: args.event_log.as_deref(),
            plan_log: args.plan_log.as_deref(),
            policy: args.policy.as_deref(),
        }
    }
}

/// What a TDX verification needs besides the quote, loaded once per process.
pub struct TdxInputs {
    root: tdx::pck::IntelRoot,
    collateral: Option<tdx::collateral::Collateral>,
    /// The reference values (`None`: none compared).
    pub reference: Option<tdx::appraise::Reference>,
    policy: tdx::appraise::Policy,
    event_log: Option<cvm_attest::eventlog::AnyLog>,
    /// The plan's events, compared with a guest's log.
    pub plan_log: Option<tdx::appraise::EventLog>,
    cache: cvm_attest::Cache,
}

impl TdxInputs {
    /// Replays `log` against the quote (instead of any --event-log).
    pub fn set_event_log(&mut self, log: cvm_attest::eventlog::AnyLog) {
        self.event_log = Some(log);
    }

    /// Verifies with `c` (instead of any --collateral).
    pub fn set_collateral(&mut self, c: tdx::collateral::Collateral) {
        self.collateral = Some(c);
    }
}

impl SnpInputs {
    /// Checks revocation with `crl` (instead of any --crl).
    pub fn set_crl(&mut self, crl: Crl) {
        self.crl = Some(crl);
    }
}

/// What an SNP verification needs besides the report, loaded once per process.
pub struct SnpInputs {
    roots: Roots,
    supplied: Supplied,
    crl: Option<Crl>,
    /// The reference values (`None`: none compared).
    pub reference: Option<Reference>,
    policy: Policy,
    /// Shared by a batch: the chain is verified once.
    cache: cvm_attest::Cache,
}

/// Runs `cvm verify`.
pub fn run(args: &VerifyArgs) -> CmdResult {
    match verdicts(args) {
        Err(e) => (None, Err(e)),
        Ok(verdicts) => {
            // The most severe failure across the batch decides the exit code.
            let failure = verdicts
                .iter()
                .filter_map(|(path, v)| v.failure().map(|f| (path, f)))
                .min_by_key(|(_, (c, _))| c.rank());
            let exit = match failure {
                None => Ok(()),
                Some((path, (category, first))) => Err(CliError::Rejected {
                    category,
                    first: format!("{}: {first}", path.display()),
                }),
            };
            let report = BatchReport {
                verdict: if exit.is_ok() {
                    Status::Pass
                } else {
                    Status::Fail
                },
                verdicts: verdicts
                    .into_iter()
                    .map(|(evidence, verdict)| BatchItem { evidence, verdict })
                    .collect(),
            };
            match Output::new(&report) {
                Ok(out) => (Some(out), exit),
                Err(e) => (None, Err(e)),
            }
        }
    }
}

fn verdicts(args: &VerifyArgs) -> Result<Vec<(PathBuf, AnyVerdict)>, CliError> {
    let at = at_or_now(args.at.as_deref())?;
    let bundle = args
        .collateral
        .as_deref()
        .filter(|p| super::collateral::bundle::is_bundle(p));
    let mut tdx_inputs: Option<TdxInputs> = None;
    let mut snp_inputs: Option<SnpInputs> = None;
    let mut cca_inputs: Option<CcaInputs> = None;
    let mut services: Option<super::collateral::Services> = None;
    let mut out = Vec::new();
    for path in &args.evidence {
        let evidence = read_file(path, InputKind::Evidence)?;
        let verdict = match detect(args, path, &evidence, bundle.is_some())? {
            Tee::Cca => {
                let i = match cca_inputs.take() {
                    Some(i) => i,
                    None => cca_inputs_for(args)?,
                };
                let v = verify_cca(&i, &evidence, at);
                cca_inputs = Some(i);
                v
            }
            Tee::Tdx => {
                let mut i = match tdx_inputs.take() {
                    Some(i) => i,
                    None => tdx_inputs_for(args, bundle.is_some())?,
                };
                if bundle.is_some() || (args.fetch && args.collateral.is_none()) {
                    let s = services_for(&mut services, args, bundle)?;
                    if let super::collateral::Obtained::Tdx(c) =
                        s.obtain((path, &evidence), None, None, &args.root, at)?
                    {
                        i.set_collateral(c.collateral);
                    }
                }
                let v = verify_tdx(&i, &evidence, at);
                tdx_inputs = Some(i);
                v
            }
            _ => {
                let mut i = match snp_inputs.take() {
                    Some(i) => i,
                    None => snp_inputs_for(args)?,
                };
                let want_crl = args.crl.is_none() && !args.no_crl;
                let wanted = args.certs.is_none() || want_crl;
                if bundle.is_some() || (args.fetch && wanted) {
                    let vlek = i.supplied.vlek.clone();
                    let s = services_for(&mut services, args, bundle)?;
                    if let super::collateral::Obtained::Snp(c) = s.obtain(
                        (path, &evidence),
                        args.product,
                        vlek.as_ref(),
                        &args.root,
                        at,
                    )? {
                        // What --certs gives is used; the service fills in the rest.
                        let f = c.supplied();
                        let g = &mut i.supplied;
                        for (given, fetched) in [
                            (&mut g.vcek, f.vcek),
                            (&mut g.vlek, f.vlek),
                            (&mut g.ask, f.ask),
                            (&mut g.asvk, f.asvk),
                            (&mut g.ark, f.ark),
                        ] {
                            if given.is_none() {
                                *given = fetched;
                            }
                        }
                        if want_crl {
                            i.crl = Some(c.crl);
                        }
                    }
                }
                let v = verify_snp(&i, &evidence, at);
                snp_inputs = Some(i);
                v
            }
        };
        verdict.log(path);
        out.push((path.clone(), verdict));
    }
    Ok(out)
}

/// Where `--fetch` or a bundle gets collateral from (made on first use, in `slot`).
fn services_for<'s>(
    slot: &'s mut Option<super::collateral::Services>,
    args: &VerifyArgs,
    bundle: Option<&Path>,
) -> Result<&'s mut super::collateral::Services, CliError> {
    use super::collateral::{Kds, Pcs, Services, TcbUpdate, bundle::Bundle};
    if let Some(s) = slot {
        return Ok(s);
    }
    Ok(slot.insert(match bundle {
        Some(p) => {
            let b = Bundle::read(p)?;
            let m = b.manifest.clone();
            let update =
                TcbUpdate::from_manifest(&m.pcs_tcb_update).map_err(|e| CliError::Evidence {
                    path: p.to_owned(),
                    source: crate::error::InputError::Other(format!(
                        "the bundle's manifest: pcs_tcb_update {e}"
                    )),
                })?;
            Services {
                kds: Kds::new(&m.kds_url),
                pcs: Pcs::new(&m.pcs_url, Some(&m.intel_root_crl_url)).with_update(update),
                session: crate::fetch::Session::new(Box::new(b), None),
            }
        }
        None => Services {
            kds: Kds::new(&args.kds_url),
            pcs: Pcs::new(&args.pcs_url, args.intel_root_crl_url.as_deref())
                .with_update(args.tcb_update.unwrap_or_default()),
            session: crate::fetch::Session::network(args.fetch_timeout, args.cache.as_deref()),
        },
    }))
}

/// What a CCA verification needs besides the token, loaded once per process.
pub struct CcaInputs {
    anchors: cvm_attest::cca::keys::TrustAnchors,
    /// The reference values (`None`: none compared).
    pub reference: Option<cvm_attest::cca::appraise::Reference>,
    policy: cvm_attest::cca::appraise::Policy,
}

fn cca_inputs_for(args: &VerifyArgs) -> Result<CcaInputs, CliError> {
    use cvm_attest::cca::appraise::Reference as CcaReference;
    let mut reference = match &args.reference {
        Some(p) => Some(read_text(p, CcaReference::parse)?),
        None => None,
    };
    if args.report_data.is_some() {
        let r = reference.get_or_insert_with(CcaReference::skip);
        merge_report_data(args, &mut r.report_data)?;
    }
    cca_inputs(&args.cpak, &args.tastore, reference, args.policy.as_deref())
}

/// What a CCA verification needs: the trust anchors (CPAK files, trust-anchor stores),
/// the reference values, and the policy file (default: the default policy).
pub fn cca_inputs(
    cpak: &[PathBuf],
    tastore: &[PathBuf],
    reference: Option<cvm_attest::cca::appraise::Reference>,
    policy: Option<&Path>,
) -> Result<CcaInputs, CliError> {
    use cvm_attest::cca::appraise::Policy as CcaPolicy;
    let mut anchors = cvm_attest::cca::keys::TrustAnchors::default();
    for p in cpak {
        let bytes = read_file(p, InputKind::Certificate)?;
        anchors
            .add_key_file(&bytes, &p.display().to_string())
            .map_err(|e| config(p, InputError::Other(e)))?;
    }
    for p in tastore {
        let text = read_text_file(p, InputKind::Certificate)?;
        anchors
            .add_store(&text, &p.display().to_string())
            .map_err(|e| config(p, InputError::Other(e)))?;
    }
    Ok(CcaInputs {
        anchors,
        reference,
        policy: match policy {
            Some(p) => read_text(p, CcaPolicy::parse)?,
            None => CcaPolicy::default(),
        },
    })
}

/// Verifies a CCA token.
pub fn verify_cca(i: &CcaInputs, evidence: &[u8], at: Time) -> AnyVerdict {
    let v = cvm_attest::cca::Verifier {
        anchors: &i.anchors,
        reference: i.reference.as_ref(),
        policy: &i.policy,
        at,
    }
    .verify(evidence);
    AnyVerdict::Cca(Box::new(VerifyReport(v)))
}

/// Verifies a DCAP quote.
pub fn verify_tdx(i: &TdxInputs, evidence: &[u8], at: Time) -> AnyVerdict {
    let v = tdx::Verifier {
        root: &i.root,
        collateral: i.collateral.as_ref(),
        reference: i.reference.as_ref(),
        policy: &i.policy,
        event_log: i.event_log.as_ref(),
        plan_log: i.plan_log.as_ref(),
        at,
        cache: &i.cache,
    }
    .verify(evidence);
    AnyVerdict::Tdx(Box::new(VerifyReport(v)))
}

/// Verifies an SNP report.
pub fn verify_snp(i: &SnpInputs, evidence: &[u8], at: Time) -> AnyVerdict {
    let v = cvm_attest::snp::Verifier {
        roots: &i.roots,
        supplied: &i.supplied,
        crl: i.crl.as_ref(),
        reference: i.reference.as_ref(),
        policy: &i.policy,
        at,
        cache: &i.cache,
    }
    .verify(evidence);
    AnyVerdict::Snp(Box::new(VerifyReport(v)))
}

/// The kind of evidence `bytes` looks like: a DCAP quote starts with version 3, 4 or 5
/// and attestation key type 2 (ECDSA P-256), which no SNP report does (it starts with a
/// 32-bit VERSION, 2 to 5), so a damaged quote of any length is still taken for a quote;
/// a CCA token starts with CBOR tag 399 or 907; an SNP report is 1184 bytes.
pub fn sniff(bytes: &[u8]) -> Option<Tee> {
    match bytes {
        [3..=5, 0, 2, 0, ..] => Some(Tee::Tdx),
        // CBOR tag 399 (CCA token collection) or 907 (CMW collection).
        [0xd9, 0x01, 0x8f, ..] | [0xd9, 0x03, 0x8b, ..] => Some(Tee::Cca),
        _ if bytes.len() == cvm_attest::snp::report::REPORT_LEN => Some(Tee::Snp),
        _ => None,
    }
}

/// The evidence type: given, or detected ([`sniff`]); with the options that apply to it.
fn detect(args: &VerifyArgs, path: &Path, evidence: &[u8], bundle: bool) -> Result<Tee, CliError> {
    let tee = match (args.tee, sniff(evidence)) {
        (TeeChoice::Auto, Some(t)) => t,
        (TeeChoice::Auto, None) => {
            return Err(CliError::Evidence {
                path: path.to_owned(),
                source: InputError::Other(format!(
                    "{} bytes is not an SEV-SNP report (1184 bytes), a DCAP quote (version \
                     3-5, ECDSA P-256) or a CCA token (CBOR tag 399 or 907); give --tee to be \
                     told what is wrong with it",
                    evidence.len()
                )),
            });
        }
        (TeeChoice::Tee(t), _) => t,
    };
    // One mechanism refuses an option of another TEE, in verify as in measure and
    // launch: a pipeline that passes one expects it to count.
    let given = plan_args::given(&[
        ("--certs", args.certs.is_some(), plan_args::SNP),
        ("--crl", args.crl.is_some(), plan_args::SNP),
        ("--no-crl", args.no_crl, plan_args::SNP),
        (
            "--collateral",
            args.collateral.is_some() && !bundle,
            plan_args::TDX,
        ),
        ("--event-log", args.event_log.is_some(), plan_args::TDX),
        ("--plan-log", args.plan_log.is_some(), plan_args::TDX),
        ("--fetch", args.fetch, plan_args::SNP_TDX),
        ("--collateral FILE.tar", bundle, plan_args::SNP_TDX),
        ("--root", !args.root.is_empty(), plan_args::SNP_TDX),
        ("--cpak", !args.cpak.is_empty(), plan_args::CCA),
        ("--tastore", !args.tastore.is_empty(), plan_args::CCA),
    ]);
    plan_args::refuse_inapplicable(tee, &crate::tee_arg::EVIDENCE, &given).map_err(|e| {
        let hint = match tee {
            Tee::Tdx => {
                "the Intel SGX Root CA is built in, the PCK chain comes with the quote, and \
                 CRLs come in --collateral"
            }
            Tee::Cca => "a CCA token's platform key comes in --cpak or --tastore",
            _ => "an SNP report's certificates and CRL come in --certs and --crl",
        };
        CliError::Usage(format!("{}: {e} ({hint})", path.display()))
    })?;
    if tee == Tee::Cca && args.cpak.is_empty() && args.tastore.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: a CCA token needs its platform's key: --cpak FILE (JWK or PEM) or \
             --tastore FILE",
            path.display()
        )));
    }
    if tee == Tee::Snp && args.certs.is_none() && !args.fetch && !bundle {
        return Err(CliError::Usage(format!(
            "{}: an SNP report needs --certs DIR (the VCEK or VLEK, and its ASK/ASVK), \
             --fetch, or a bundle (--collateral FILE.tar)",
            path.display()
        )));
    }
    Ok(tee)
}

/// `--report-data` as a reference value.
fn report_data(args: &VerifyArgs) -> Result<Option<Bytes<64>>, CliError> {
    args.report_data
        .as_deref()
        .map(|rd| {
            Bytes::<64>::parse(rd).ok_or_else(|| {
                CliError::Usage(format!("--report-data {rd:?} is not 64 bytes of hex"))
            })
        })
        .transpose()
}

/// Sets the reference's REPORT_DATA to `--report-data`, refusing a reference file that
/// expects something else.
fn merge_report_data(args: &VerifyArgs, field: &mut Expected<Bytes<64>>) -> Result<(), CliError> {
    let Some(rd) = report_data(args)? else {
        return Ok(());
    };
    match field {
        Expected::AnyOf(v) if v.as_slice() != [rd] => {
            return Err(CliError::Usage(format!(
                "--report-data differs from the report_data of {}: give one of them",
                args.reference
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        }
        _ => *field = Expected::value(rd),
    }
    Ok(())
}

/// The roots named with `--root`, parsed.
fn extra_roots(src: &Sources<'_>) -> Result<Vec<(PathBuf, Cert)>, CliError> {
    let mut out = Vec::new();
    for path in src.root {
        let bytes = read_file(path, InputKind::Certificate)?;
        for cert in Cert::parse_file(&bytes, "the root certificate").map_err(|e| config(path, e))? {
            out.push((path.clone(), cert));
        }
    }
    Ok(out)
}

fn tdx_inputs_for(args: &VerifyArgs, bundle: bool) -> Result<TdxInputs, CliError> {
    let mut reference = match &args.reference {
        Some(p) => Some(read_text(p, tdx::appraise::Reference::parse)?),
        None => None,
    };
    if args.report_data.is_some() {
        let r = reference.get_or_insert_with(tdx_reference_skip);
        merge_report_data(args, &mut r.report_data)?;
    }
    let mut src = Sources::of(args);
    if bundle {
        // The bundle's collateral is read per quote, verified as it is used.
        src.collateral = None;
    }
    let mut inputs = tdx_inputs(&src, reference)?;
    if let Some(plan) = &inputs.plan_log {
        let r = inputs.reference.get_or_insert_with(tdx_reference_skip);
        plan_values(&plan.values, r);
    }
    Ok(inputs)
}

/// Sets the fields of `r` a file left out (skipped) to the plan's MRTD, the RTMRs it
/// determines and the owner's registers it gives.
pub fn plan_values(plan: &cvm_firmware::reference::TdxValues, r: &mut tdx::appraise::Reference) {
    let set = |e: &mut Expected<Bytes<48>>, v: Option<&cvm_firmware::reference::Hex<48>>| {
        if let (true, Some(v)) = (e.is_skip(), v) {
            *e = Expected::value(Bytes(v.0));
        }
    };
    set(&mut r.mrtd, Some(&plan.mrtd));
    for (e, v) in r.rtmr.iter_mut().zip(&plan.rtmr) {
        set(e, v.as_ref());
    }
    set(&mut r.mr_config_id, plan.mr_config_id.as_ref());
    set(&mut r.mr_owner, plan.mr_owner.as_ref());
    set(&mut r.mr_owner_config, plan.mr_owner_config.as_ref());
}

/// A TDX reference that compares nothing (until fields are set).
pub fn tdx_reference_skip() -> tdx::appraise::Reference {
    tdx::appraise::Reference {
        tee: None,
        mrtd: Expected::Skip,
        rtmr: [
            Expected::Skip,
            Expected::Skip,
            Expected::Skip,
            Expected::Skip,
        ],
        mr_config_id: Expected::Skip,
        mr_owner: Expected::Skip,
        mr_owner_config: Expected::Skip,
        mr_service_td: Expected::Skip,
        mr_seam: Expected::Skip,
        report_data: Expected::Skip,
        mr_enclave: Expected::Skip,
        mr_signer: Expected::Skip,
    }
}

/// An SNP reference that compares nothing (until fields are set).
pub fn snp_reference_skip() -> Reference {
    Reference {
        measurement: Expected::Skip,
        host_data: Expected::Skip,
        id_key_digest: Expected::Skip,
        author_key_digest: Expected::Skip,
        report_data: Expected::Skip,
        family_id: Expected::Skip,
        image_id: Expected::Skip,
    }
}

/// What a TDX verification with `reference` needs, from `src`.
pub fn tdx_inputs(
    src: &Sources<'_>,
    reference: Option<tdx::appraise::Reference>,
) -> Result<TdxInputs, CliError> {
    let mut root = tdx::pck::IntelRoot::builtin().map_err(|e| CliError::Evidence {
        path: PathBuf::from("built-in Intel SGX Root CA"),
        source: e.into(),
    })?;
    for (_, cert) in extra_roots(src)? {
        root.add_root(cert);
    }
    let collateral = match src.collateral {
        Some(p) => Some(read_collateral(p)?),
        None => None,
    };
    Ok(TdxInputs {
        root,
        collateral,
        reference,
        policy: match src.policy {
            Some(p) => read_text(p, tdx::appraise::Policy::parse)?,
            None => tdx::appraise::Policy::default(),
        },
        event_log: match src.event_log {
            Some(p) => {
                let bytes = read_file(p, InputKind::Config)?;
                Some(cvm_attest::eventlog::AnyLog::parse(&bytes).map_err(|e| config(p, e))?)
            }
            None => None,
        },
        plan_log: match src.plan_log {
            Some(p) => Some(read_text(p, tdx::appraise::parse_event_log)?),
            None => None,
        },
        cache: cvm_attest::Cache::default(),
    })
}

fn snp_inputs_for(args: &VerifyArgs) -> Result<SnpInputs, CliError> {
    let mut reference = match &args.reference {
        Some(p) => Some(read_text(p, Reference::parse)?),
        None => None,
    };
    if args.report_data.is_some() {
        let r = reference.get_or_insert_with(snp_reference_skip);
        merge_report_data(args, &mut r.report_data)?;
    }
    snp_inputs(&Sources::of(args), reference, None)
}

/// What an SNP verification with `reference` needs, from `src`; `supplied` replaces the
/// certificates of `src.certs` (the guest's certificate table).
pub fn snp_inputs(
    src: &Sources<'_>,
    reference: Option<Reference>,
    supplied: Option<Supplied>,
) -> Result<SnpInputs, CliError> {
    let mut roots = Roots::amd().map_err(|e| CliError::Evidence {
        path: PathBuf::from("built-in AMD roots"),
        source: e.into(),
    })?;
    for (path, cert) in extra_roots(src)? {
        roots
            .add_root(cert)
            .map_err(|e| config(&path, InputError::Other(e)))?;
    }
    let supplied = match (supplied, src.certs) {
        (Some(s), _) => s,
        (None, Some(dir)) => read_certs(dir)?,
        (None, None) => Supplied::default(),
    };
    let crl = src
        .crl
        .map(|p| {
            let bytes = read_file(p, InputKind::Collateral)?;
            Crl::parse(&bytes, "the CRL").map_err(|e| CliError::Evidence {
                path: p.to_owned(),
                source: e.into(),
            })
        })
        .transpose()?;
    let mut policy = match src.policy {
        Some(p) => read_text(p, Policy::parse)?,
        None => Policy::default(),
    };
    if src.no_crl {
        policy.allow_unchecked_revocation = true;
    }
    Ok(SnpInputs {
        roots,
        supplied,
        crl,
        reference,
        policy,
        cache: cvm_attest::Cache::default(),
    })
}

fn config(path: &Path, source: impl Into<InputError>) -> CliError {
    CliError::Config {
        path: path.to_owned(),
        source: source.into(),
    }
}

/// A UTF-8 text file of `kind`, whole.
fn read_text_file(path: &Path, kind: InputKind) -> Result<String, CliError> {
    let bytes = read_file(path, kind)?;
    String::from_utf8(bytes).map_err(|_| config(path, InputError::Other("not UTF-8 text".into())))
}

/// A configuration file (reference values, policy, event log) parsed by `parse`.
fn read_text<T, E: Into<InputError>>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, CliError> {
    let text = read_text_file(path, InputKind::Config)?;
    parse(&text).map_err(|e| config(path, e))
}

/// The regular files directly in `dir`, by name, read whole (each within `kind`'s
/// limit).
fn read_dir_files(dir: &Path, kind: InputKind) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CliError::ReadInput {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CliError::ReadInput {
            path: dir.to_owned(),
            source,
        })?;
        if entry.path().is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, read_file(&entry.path(), kind)?));
        }
    }
    files.sort();
    Ok(files)
}

fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect()
}

/// Reads the certificates in `dir`, by role from their file names (see
/// [`Supplied::from_files`]); other files are ignored with a warning.
pub fn read_certs(dir: &Path) -> Result<Supplied, CliError> {
    let files = read_dir_files(dir, InputKind::Certificate)?;
    let (supplied, ignored) =
        Supplied::from_files(&as_refs(&files)).map_err(|e| CliError::Evidence {
            path: dir.to_owned(),
            source: e.into(),
        })?;
    for name in ignored {
        tracing::warn!(
            "{}: ignoring {name} (not vcek, vlek, ask, asvk or ark)",
            dir.display()
        );
    }
    Ok(supplied)
}

/// Reads `--collateral`: a JSON bundle, or a directory of the pieces (see
/// [`tdx::collateral::Collateral::from_pieces`]). A missing piece is missing collateral
/// (exit 4), a malformed one malformed input.
fn read_collateral(path: &Path) -> Result<tdx::collateral::Collateral, CliError> {
    let classify = |e: tdx::collateral::CollateralError| match e {
        tdx::collateral::CollateralError::Missing(_) => CliError::CollateralMissing {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        other => config(path, other),
    };
    if !path.is_dir() {
        let text = read_text_file(path, InputKind::Collateral)?;
        return tdx::collateral::Collateral::parse_json(&text).map_err(classify);
    }
    let files = read_dir_files(path, InputKind::Collateral)?;
    let (collateral, ignored) =
        tdx::collateral::Collateral::from_pieces(&as_refs(&files)).map_err(classify)?;
    for name in ignored {
        tracing::warn!("{}: ignoring {name}", path.display());
    }
    Ok(collateral)
}

/// `--at`, or the current time.
pub fn at_or_now(at: Option<&str>) -> Result<Time, CliError> {
    match at {
        Some(s) => Time::parse_rfc3339(s).map_err(|e| CliError::Usage(format!("--at: {e}"))),
        None => now(),
    }
}

fn now() -> Result<Time, CliError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Time(d.as_secs()))
        .map_err(|_| CliError::Usage("the system clock is before 1970: give --at".into()))
}

/// The exit-code category of a failed verdict.
pub fn category_exit(category: Category) -> crate::exit::ExitCode {
    use crate::exit::ExitCode;
    match category {
        Category::Malformed => ExitCode::MalformedInput,
        Category::Signature => ExitCode::SignatureInvalid,
        Category::Collateral => ExitCode::CollateralUnavailable,
        Category::Policy => ExitCode::PolicyRejected,
    }
}
