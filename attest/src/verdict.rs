//! The result of a verification: pass or fail, with every check and its reason.

use crate::time::Time;
use cvm_firmware::Tee;
use serde::Serialize;
use std::fmt;

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
    pub name: CheckId,
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
    /// The TEE whose evidence this is (`snp`, `tdx`, `sgx`).
    pub tee: Tee,
    /// The product ("Milan", "Genoa", "Turin", ...), when known.
    pub product: Option<String>,
    /// The time the certificates and collateral were judged at.
    pub verification_time: Time,
    /// Every check, in the order made.
    pub checks: Vec<Check>,
    /// The decoded claims (present whenever the evidence could be parsed; they are
    /// trustworthy only when the verdict is pass).
    pub claims: Option<C>,
    /// TDX with a guest's event log and the plan's: where the guest's events depart from
    /// the plan's, for each RTMR the guest's log replays to (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub departures: Vec<crate::eventlog::Departure>,
}

impl<C> Verdict<C> {
    /// The verdict of `checks`: pass only if none failed.
    pub fn new(
        checks: Checks,
        tee: Tee,
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
            departures: Vec::new(),
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
        name: CheckId,
        category: Category,
        result: Result<String, String>,
    ) -> bool {
        let (outcome, reason) = match result {
            Ok(r) => (Outcome::Pass, r),
            Err(r) => (Outcome::Fail, r),
        };
        self.0.push(Check {
            name,
            outcome,
            category,
            reason,
        });
        outcome == Outcome::Pass
    }

    /// Records a check skipped on purpose.
    pub fn skip(&mut self, name: CheckId, category: Category, reason: &str) {
        self.0.push(Check {
            name,
            outcome: Outcome::Skipped,
            category,
            reason: reason.to_owned(),
        });
    }

    /// Appends `note` to the reason of the check `name` (the last one recorded).
    pub fn annotate(&mut self, name: CheckId, note: &str) {
        if let Some(c) = self.0.iter_mut().rev().find(|c| c.name == name) {
            c.reason.push_str("; ");
            c.reason.push_str(note);
        }
    }

    /// Whether any check failed so far.
    pub fn any_failed(&self) -> bool {
        self.0.iter().any(|c| c.outcome == Outcome::Fail)
    }
}

/// Defines [`CheckId`]: one variant per check name, the name each serialises to, and
/// the table of all of them.
macro_rules! check_ids {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// The name of a check. The names are part of the verdict's stable JSON: README.md
        /// lists every one (a test compares that list with [`CheckId::ALL`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum CheckId {
            $($(#[$doc])* $variant,)+
        }

        impl CheckId {
            /// Every check name, in the order of the README's table.
            pub const ALL: &[CheckId] = &[$(CheckId::$variant,)+];

            /// The stable dotted name.
            pub fn name(self) -> &'static str {
                match self {
                    $(CheckId::$variant => $name,)+
                }
            }
        }
    };
}

check_ids! {
    // SEV-SNP: the report.
    /// The report parses (length, version).
    ReportParse => "report.parse",
    /// Reserved fields zero, signature encoding, signature algorithm.
    ReportStructure => "report.structure",
    /// SIGNING_KEY names a VCEK or a VLEK.
    ReportSigningKey => "report.signing_key",
    /// The report's ECDSA P-384 signature.
    ReportSignature => "report.signature",
    /// The TCB values' reserved bytes (for the product's layout).
    ReportTcbReserved => "report.tcb_reserved",
    // SEV-SNP: the AMD chain.
    /// The VCEK/VLEK is supplied and named as its role.
    ChainLeaf => "chain.leaf",
    /// The VCEK/VLEK matches its role's certificate profile.
    ChainLeafProfile => "chain.leaf.profile",
    /// The VCEK/VLEK is signed by the ASK/ASVK.
    ChainLeafSignature => "chain.leaf.signature",
    /// The VCEK/VLEK is valid at the verification time.
    ChainLeafValidity => "chain.leaf.signature.validity",
    /// The ASK/ASVK is signed by the root.
    ChainIntermediate => "chain.intermediate",
    /// The ASK/ASVK matches its role's certificate profile.
    ChainIntermediateProfile => "chain.intermediate.profile",
    /// The ASK/ASVK is valid at the verification time.
    ChainIntermediateValidity => "chain.intermediate.validity",
    /// A supplied ARK is a trusted root.
    ChainSuppliedArk => "chain.supplied_ark",
    /// The chain ends in a trusted root, whose self-signature verifies.
    ChainRoot => "chain.root",
    /// The root matches the ARK's certificate profile.
    ChainRootProfile => "chain.root.profile",
    /// The root is valid at the verification time.
    ChainRootValidity => "chain.root.validity",
    /// Revocation is checked (a CRL is given, or the policy allows unchecked revocation).
    ChainCrl => "chain.crl",
    /// The CRL is signed by the root.
    ChainCrlSignature => "chain.crl.signature",
    /// The CRL is current at the verification time.
    ChainCrlValidity => "chain.crl.validity",
    /// The CRL does not revoke the ASK/ASVK.
    ChainCrlRevocation => "chain.crl.revocation",
    // SEV-SNP: the leaf describes the report.
    /// The VCEK/VLEK's AMD extensions decode.
    LeafExtensions => "leaf.extensions",
    /// REPORTED_TCB equals the certificate's SPLs.
    LeafTcb => "leaf.tcb",
    /// CHIP_ID equals the VCEK's hwID.
    LeafChipId => "leaf.chip_id",
    /// The certificate's product, the chain's and the report's CPUID agree.
    LeafProduct => "leaf.product",
    // Reference values (SNP, TDX, SGX).
    /// Reference values are compared (or `--no-reference` said they are not), and
    /// apply to this evidence's type.
    Reference => "reference",
    /// SNP MEASUREMENT.
    ReferenceMeasurement => "reference.measurement",
    /// SNP HOST_DATA.
    ReferenceHostData => "reference.host_data",
    /// SNP ID_KEY_DIGEST.
    ReferenceIdKeyDigest => "reference.id_key_digest",
    /// SNP AUTHOR_KEY_DIGEST.
    ReferenceAuthorKeyDigest => "reference.author_key_digest",
    /// SNP FAMILY_ID.
    ReferenceFamilyId => "reference.family_id",
    /// SNP IMAGE_ID.
    ReferenceImageId => "reference.image_id",
    /// REPORT_DATA (TDX, SGX: REPORTDATA).
    ReferenceReportData => "reference.report_data",
    /// TDX MRTD.
    ReferenceMrtd => "reference.mrtd",
    /// TDX RTMR 0.
    ReferenceRtmr0 => "reference.rtmr0",
    /// TDX RTMR 1.
    ReferenceRtmr1 => "reference.rtmr1",
    /// TDX RTMR 2.
    ReferenceRtmr2 => "reference.rtmr2",
    /// TDX RTMR 3.
    ReferenceRtmr3 => "reference.rtmr3",
    /// TDX MRCONFIGID.
    ReferenceMrConfigId => "reference.mr_config_id",
    /// TDX MROWNER.
    ReferenceMrOwner => "reference.mr_owner",
    /// TDX MROWNERCONFIG.
    ReferenceMrOwnerConfig => "reference.mr_owner_config",
    /// TDX MRSERVICETD.
    ReferenceMrServiceTd => "reference.mr_service_td",
    /// TDX MRSEAM.
    ReferenceMrSeam => "reference.mr_seam",
    /// SGX MRENCLAVE.
    ReferenceMrEnclave => "reference.mr_enclave",
    /// SGX MRSIGNER.
    ReferenceMrSigner => "reference.mr_signer",
    /// `cvm launch --attest`: the evidence is of the TEE launched, whose plan gave the
    /// reference values (an unprotected launch has none).
    LaunchReference => "launch.reference",
    // Policy (SNP, TDX, SGX).
    /// The policy applies to this evidence's type.
    PolicyTee => "policy.tee",
    /// SNP POLICY bit 17 (reserved, must be one).
    PolicyReservedBit17 => "policy.reserved_bit17",
    /// SNP POLICY bits the ABI reserves are clear.
    PolicyReservedBits => "policy.reserved_bits",
    /// Debugging (SNP POLICY.DEBUG, TDATTRIBUTES.DEBUG, SGX ATTRIBUTES.DEBUG).
    PolicyDebug => "policy.debug",
    /// SNP POLICY.MIGRATE_MA.
    PolicyMigrateMa => "policy.migrate_ma",
    /// SNP POLICY.SMT.
    PolicySmt => "policy.smt",
    /// SNP POLICY.SINGLE_SOCKET.
    PolicySingleSocket => "policy.single_socket",
    /// SNP POLICY.CIPHERTEXT_HIDING.
    PolicyCiphertextHiding => "policy.ciphertext_hiding",
    /// SNP AUTHOR_KEY_EN.
    PolicyAuthorKey => "policy.author_key",
    /// SNP GUEST_SVN.
    PolicyGuestSvn => "policy.guest_svn",
    /// SNP VMPL.
    PolicyVmpl => "policy.vmpl",
    /// SNP signing key (VCEK or VLEK).
    PolicySigningKey => "policy.signing_key",
    /// SNP REPORTED_TCB minimum.
    PolicyMinTcbReported => "policy.min_tcb.reported",
    /// SNP COMMITTED_TCB minimum.
    PolicyMinTcbCommitted => "policy.min_tcb.committed",
    /// SNP CURRENT_TCB minimum.
    PolicyMinTcbCurrent => "policy.min_tcb.current",
    /// SNP LAUNCH_TCB minimum.
    PolicyMinTcbLaunch => "policy.min_tcb.launch",
    /// TDX TDATTRIBUTES.SEPT_VE_DISABLE.
    PolicySeptVeDisable => "policy.sept_ve_disable",
    /// TDX TDATTRIBUTES.MIGRATABLE.
    PolicyMigratable => "policy.migratable",
    /// TDX TDATTRIBUTES bits not named.
    PolicyTdAttributes => "policy.td_attributes",
    /// TDX XFAM.
    PolicyXfam => "policy.xfam",
    /// SGX ISVSVN.
    PolicyIsvSvn => "policy.isv_svn",
    // Intel DCAP: the quote.
    /// The quote parses.
    QuoteParse => "quote.parse",
    /// The quote's structure and QE vendor.
    QuoteStructure => "quote.structure",
    /// The quote's signature by the attestation key.
    QuoteSignature => "quote.signature",
    // Intel DCAP: the PCK chain.
    /// The quote's PCK chain decodes.
    PckChain => "pck.chain",
    /// The quote carries a root other than the trusted one (ignored).
    PckChainRoot => "pck.chain.root",
    /// The PCK CA: its name, profile, signature by the root, validity.
    PckCa => "pck.ca",
    /// The PCK certificate: its name, profile, signature by the CA, validity.
    PckLeaf => "pck.leaf",
    /// The PCK certificate's SGX extensions decode.
    PckExtensions => "pck.extensions",
    /// Neither the PCK certificate nor its CA is revoked.
    PckRevocation => "pck.revocation",
    // Intel DCAP: the QE.
    /// The QE report's signature by the PCK key.
    QeReportSignature => "qe.report_signature",
    /// The QE report binds the attestation key.
    QeReportData => "qe.report_data",
    /// The QE matches Intel's QE Identity.
    QeIdentity => "qe.identity",
    /// The QE's TCB level.
    QeTcb => "qe.tcb",
    // Intel DCAP: collateral.
    /// Collateral was given.
    Collateral => "collateral",
    /// The Root CA CRL's signature.
    CollateralRootCaCrl => "collateral.root_ca_crl",
    /// The Root CA CRL is current.
    CollateralRootCaCrlValidity => "collateral.root_ca_crl.validity",
    /// The PCK CRL's signature.
    CollateralPckCrl => "collateral.pck_crl",
    /// The PCK CRL is current.
    CollateralPckCrlValidity => "collateral.pck_crl.validity",
    /// The PCK CRL's issuer chain decodes, matches the CRL's issuer and chains to the root.
    CollateralPckCrlIssuerChain => "collateral.pck_crl_issuer_chain",
    /// The TCB Info's signer.
    CollateralTcbInfoSigner => "collateral.tcb_info.signer",
    /// The TCB Info's signature.
    CollateralTcbInfoSignature => "collateral.tcb_info.signature",
    /// The TCB Info decodes.
    CollateralTcbInfoBody => "collateral.tcb_info.body",
    /// The TCB Info is current.
    CollateralTcbInfoValidity => "collateral.tcb_info.validity",
    /// The TCB Info is of the quote's kind and version.
    CollateralTcbInfoKind => "collateral.tcb_info.kind",
    /// The QE Identity's signer.
    CollateralQeIdentitySigner => "collateral.qe_identity.signer",
    /// The QE Identity's signature.
    CollateralQeIdentitySignature => "collateral.qe_identity.signature",
    /// The QE Identity decodes.
    CollateralQeIdentityBody => "collateral.qe_identity.body",
    /// The QE Identity is current.
    CollateralQeIdentityValidity => "collateral.qe_identity.validity",
    /// The QE Identity is of the quote's kind and version.
    CollateralQeIdentityKind => "collateral.qe_identity.kind",
    // Intel DCAP: the TCB evaluation.
    /// The TCB Info is for the platform's FMSPC and PCE ID.
    TcbFmspc => "tcb.fmspc",
    /// The platform's TCB level.
    TcbPlatform => "tcb.platform",
    /// The TDX module's TCB level.
    TcbModule => "tcb.module",
    /// The merged TCB status against the policy.
    TcbStatus => "tcb.status",
    // The TDX event log.
    /// The event log replays to RTMR 0.
    EventLogRtmr0 => "event_log.rtmr0",
    /// The event log replays to RTMR 1.
    EventLogRtmr1 => "event_log.rtmr1",
    /// The event log replays to RTMR 2.
    EventLogRtmr2 => "event_log.rtmr2",
    /// The event log replays to RTMR 3.
    EventLogRtmr3 => "event_log.rtmr3",
    // Arm CCA: the token.
    /// The token parses: the collection, both COSE_Sign1 messages, every claim.
    TokenParse => "token.parse",
    /// A trusted CPAK for the platform's implementation and instance ID.
    PlatformAnchor => "platform.anchor",
    /// The platform token's signature by that CPAK.
    PlatformSignature => "platform.signature",
    /// The realm token's signature by the RAK its claims carry.
    RealmSignature => "realm.signature",
    /// The platform challenge is the hash of the realm's RAK claim.
    RealmBinding => "realm.binding",
    /// The platform's security lifecycle is one the policy accepts.
    PolicyLifecycle => "policy.lifecycle",
    /// The platform's software components are among the reference values'.
    ReferenceSwComponents => "reference.sw_components",
    /// The platform's implementation ID.
    ReferenceImplementationId => "reference.implementation_id",
    /// The Realm Initial Measurement.
    ReferenceRim => "reference.rim",
    /// REM 0.
    ReferenceRem0 => "reference.rem0",
    /// REM 1.
    ReferenceRem1 => "reference.rem1",
    /// REM 2.
    ReferenceRem2 => "reference.rem2",
    /// REM 3.
    ReferenceRem3 => "reference.rem3",
    /// The Realm Personalization Value.
    ReferenceRpv => "reference.rpv",
}

impl CheckId {
    /// `reference.rem0` to `reference.rem3`.
    pub const REFERENCE_REM: [CheckId; 4] = [
        CheckId::ReferenceRem0,
        CheckId::ReferenceRem1,
        CheckId::ReferenceRem2,
        CheckId::ReferenceRem3,
    ];
    /// `reference.rtmr0` to `reference.rtmr3`.
    pub const REFERENCE_RTMR: [CheckId; 4] = [
        CheckId::ReferenceRtmr0,
        CheckId::ReferenceRtmr1,
        CheckId::ReferenceRtmr2,
        CheckId::ReferenceRtmr3,
    ];
    /// `event_log.rtmr0` to `event_log.rtmr3`.
    pub const EVENT_LOG_RTMR: [CheckId; 4] = [
        CheckId::EventLogRtmr0,
        CheckId::EventLogRtmr1,
        CheckId::EventLogRtmr2,
        CheckId::EventLogRtmr3,
    ];
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PartialEq<&str> for CheckId {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_are_distinct_and_dotted() {
        let mut names: Vec<&str> = CheckId::ALL.iter().map(|c| c.name()).collect();
        assert!(names.iter().all(|n| {
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        }));
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
