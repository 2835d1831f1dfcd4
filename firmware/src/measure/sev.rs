//! SEV-SNP, SEV-ES and SEV launch digests.
//!
//! SNP (SEV-SNP ABI, SNP_LAUNCH_UPDATE): the launch digest starts as 48 zero bytes and
//! every page updates it to SHA-384 of a 0x70-byte PAGE_INFO: the previous digest, the
//! page's contents digest (SHA-384 of the page for NORMAL and VMSA pages, zeros for the
//! other types), length 0x70, page type, IMI 0, VMPL permissions 0, and the GPA.
//! SEV-ES and SEV (LAUNCH_MEASURE): SHA-256 over the loaded data, then the VMSAs.

use super::Component;
use crate::error::{FirmwareError, Result};
use crate::hex::encode;
use crate::plan::{LaunchPlan, Origin, PageKind, Platform, Step};
use crate::sev::vmsa;
use sha2::{Digest, Sha256, Sha384};

/// The result of measuring a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// The platform.
    pub platform: Platform,
    /// The launch digest (48 bytes for SNP, 32 for SEV-ES and SEV).
    pub digest: Vec<u8>,
    /// SNP: the launch digest after the firmware pages alone (what `--firmware-digest`
    /// takes, to skip hashing the firmware next time).
    pub firmware_digest: Option<[u8; 48]>,
    /// Every contributing component, when asked for.
    pub components: Vec<Component>,
}

/// How to measure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// SNP: the launch digest after the firmware pages, computed earlier; the firmware
    /// pages are then not hashed again.
    pub firmware_digest: Option<[u8; 48]>,
    /// Record every component (costs an extra SHA-256 per component).
    pub explain: bool,
    /// SNP: how many threads hash page contents (0 and 1 both mean the calling thread
    /// only). The chain itself is sequential; the per-page SHA-384s are not.
    pub threads: usize,
}

/// Measures `plan`. A plain (unprotected) plan has no launch measurement.
pub fn measure(plan: &LaunchPlan<'_>, opts: &Options) -> Result<Measurement> {
    match plan.platform {
        Platform::Snp => {
            if let Some(s) = plan.steps.iter().find(|s| s.kind.snp_page_type().is_none()) {
                return Err(FirmwareError::Unsupported(format!(
                    "an SNP plan cannot hold {} pages (at {:#x})",
                    s.kind.name(),
                    s.gpa
                )));
            }
            Ok(snp(plan, opts))
        }
        Platform::Tdx => Err(FirmwareError::Unsupported(
            "a TDX plan is measured by measure::tdx".into(),
        )),
        Platform::SevEs | Platform::Sev => Ok(sev(plan, opts)),
        Platform::Plain => Err(FirmwareError::Unsupported(
            "a plain (unprotected) launch has no hardware measurement".into(),
        )),
    }
}

const PAGE: usize = 4096;
const PAGE_INFO_LEN: u16 = 0x70;

struct SnpDigest([u8; 48]);

impl SnpDigest {
    fn update(&mut self, contents: &[u8; 48], page_type: u8, gpa: u64) {
        let mut h = Sha384::new();
        h.update(self.0);
        h.update(contents);
        h.update(PAGE_INFO_LEN.to_le_bytes());
        h.update([page_type, 0, 0, 0, 0, 0]); // IMI, VMPL3/2/1 permissions, reserved
        h.update(gpa.to_le_bytes());
        self.0 = h.finalize().into();
    }
}

fn snp(plan: &LaunchPlan<'_>, opts: &Options) -> Measurement {
    let mut ld = SnpDigest([0u8; 48]);
    let mut components = Vec::new();
    let mut firmware_digest = None;
    for step in &plan.steps {
        match (step.origin, opts.firmware_digest) {
            (Origin::Firmware, Some(seed)) => ld.0 = seed,
            _ => snp_step(&mut ld, step, opts.threads),
        }
        if step.origin == Origin::Firmware {
            firmware_digest = Some(ld.0);
        }
        if opts.explain {
            components.push(component(plan, step, Some(&ld.0)));
        }
    }
    for (i, vcpu) in plan.vcpus.iter().enumerate() {
        let page = vmsa::page(vcpu, plan.sev_features);
        ld.update(&Sha384::digest(&page[..]).into(), 2, vmsa::VMSA_GPA);
        if opts.explain {
            components.push(vmsa_component(i, &page[..], Some(&ld.0)));
        }
    }
    Measurement {
        platform: plan.platform,
        digest: ld.0.to_vec(),
        firmware_digest,
        components,
    }
}

fn snp_step(ld: &mut SnpDigest, step: &Step<'_>, threads: usize) {
    // `measure` checked that every step of an SNP plan has an SNP page type.
    let ty = step.kind.snp_page_type().unwrap_or_default();
    let pages = step.len / 4096;
    if step.kind == PageKind::Normal {
        for (i, contents) in (0u64..).zip(page_digests(&step.data, threads)) {
            ld.update(
                &contents,
                ty,
                step.gpa.saturating_add(i.saturating_mul(4096)),
            );
        }
    } else {
        for i in 0..pages {
            ld.update(
                &[0u8; 48],
                ty,
                step.gpa.saturating_add(i.saturating_mul(4096)),
            );
        }
    }
}

/// SHA-384 of every page of `data`, in order, spread over up to `threads` threads.
fn page_digests(data: &[u8], threads: usize) -> Vec<[u8; 48]> {
    let hash_all =
        |d: &[u8]| -> Vec<[u8; 48]> { d.chunks(PAGE).map(|p| Sha384::digest(p).into()).collect() };
    let pages = data.len().div_ceil(PAGE);
    let per_thread = pages.div_ceil(threads.max(1)).max(MIN_PAGES_PER_THREAD);
    if per_thread >= pages {
        return hash_all(data);
    }
    std::thread::scope(|scope| {
        let mut parts = data.chunks(per_thread.saturating_mul(PAGE));
        let first = parts.next().unwrap_or_default();
        let handles: Vec<_> = parts
            .map(|part| scope.spawn(move || hash_all(part)))
            .collect();
        let mut out = hash_all(first);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // A hashing thread cannot panic short of allocation failure; if one
                // did, hash everything here rather than lose its part.
                Err(_) => return hash_all(data),
            }
        }
        out
    })
}

/// Below this many pages per thread, spawning costs more than it saves.
const MIN_PAGES_PER_THREAD: usize = 64;

fn sev(plan: &LaunchPlan<'_>, opts: &Options) -> Measurement {
    let mut h = Sha256::new();
    let mut components = Vec::new();
    for step in &plan.steps {
        h.update(&step.data);
        if opts.explain {
            components.push(component(plan, step, None));
        }
    }
    for (i, vcpu) in plan.vcpus.iter().enumerate() {
        let page = vmsa::page(vcpu, plan.sev_features);
        h.update(&page[..]);
        if opts.explain {
            components.push(vmsa_component(i, &page[..], None));
        }
    }
    Measurement {
        platform: plan.platform,
        digest: h.finalize().to_vec(),
        firmware_digest: None,
        components,
    }
}

fn component(plan: &LaunchPlan<'_>, step: &Step<'_>, ld: Option<&[u8; 48]>) -> Component {
    let name = match step.origin {
        Origin::Firmware => "firmware".to_owned(),
        Origin::SevMetadata { index, section } => {
            format!("SEV metadata section {index} ({section:?})")
        }
        Origin::KernelHashes => match plan.kernel_hashes {
            Some(k) => format!(
                "kernel hashes table (kernel sha256 {}, initrd sha256 {}, cmdline sha256 {})",
                encode(&k.kernel),
                encode(&k.initrd),
                encode(&k.cmdline)
            ),
            None => "kernel hashes table".to_owned(),
        },
        Origin::Svsm => "SVSM".to_owned(),
        Origin::SvsmMetadata { index, section } => {
            format!("SVSM SEV metadata section {index} ({section:?})")
        }
        Origin::Gdt => "GDT".to_owned(),
        Origin::PageTables => "page tables".to_owned(),
        Origin::MpTable => "MP table".to_owned(),
        Origin::BootParams => "boot_params".to_owned(),
        Origin::CommandLine => "command line".to_owned(),
        Origin::Kernel => "kernel".to_owned(),
        Origin::Initrd => "initrd".to_owned(),
        Origin::Tdvf { index, section, .. } => format!("TDVF section {index} ({section:?})"),
    };
    Component {
        name,
        gpa: Some(step.gpa),
        len: step.len,
        page_type: step.kind.name(),
        sha256: (step.kind == PageKind::Normal).then(|| encode(&Sha256::digest(&step.data))),
        launch_digest: ld.map(|d| encode(d)),
    }
}

fn vmsa_component(i: usize, page: &[u8], ld: Option<&[u8; 48]>) -> Component {
    Component {
        name: format!("VMSA vCPU {i}"),
        gpa: ld.map(|_| vmsa::VMSA_GPA),
        len: 4096,
        page_type: "vmsa",
        sha256: Some(encode(&Sha256::digest(page))),
        launch_digest: ld.map(|d| encode(d)),
    }
}
