//! SEV-SNP, SEV-ES and SEV launch digests.
//!
//! SNP (SEV-SNP ABI, SNP_LAUNCH_UPDATE): the launch digest starts as 48 zero bytes and
//! every page updates it to SHA-384 of a 0x70-byte PAGE_INFO: the previous digest, the
//! page's contents digest (SHA-384 of the page for NORMAL and VMSA pages, zeros for the
//! other types), length 0x70, page type, IMI 0, VMPL permissions 0, and the GPA.
//! SEV-ES and SEV (LAUNCH_MEASURE): SHA-256 over the loaded data, then the VMSAs.

use super::Component;
use crate::error::{FirmwareError, Result};
use crate::plan::{LaunchPlan, Origin, PageKind, Step};
use crate::sev::vmsa;
use crate::tee::Tee;
use crate::vcpu::VcpuState;
use hex::encode;
use sha2::{Digest, Sha256, Sha384};

/// The result of measuring a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// The TEE.
    pub tee: Tee,
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
pub struct Options<'p> {
    /// SNP: the launch digest after the firmware pages, computed earlier; the firmware
    /// pages are then not hashed again.
    pub firmware_digest: Option<[u8; 48]>,
    /// Record every component (costs an extra SHA-256 per component).
    pub explain: bool,
    /// SNP: how many threads hash page contents (0 and 1 both mean the calling thread
    /// only). The chain itself is sequential; the per-page SHA-384s are not.
    pub threads: usize,
    /// SNP: page digests computed earlier (for instance on another thread while the plan
    /// was being built), used for every page of the plan that lies in the very memory
    /// they were computed from.
    pub prehashed: Option<&'p PageDigests<'p>>,
}

/// The SHA-384 of every 4 KiB page of a buffer, computed ahead of [`measure`].
///
/// It borrows the buffer for as long as it lives, so the bytes cannot change in between.
/// [`measure`] takes a digest from it only for a plan step whose contents are a
/// page-aligned part of that same buffer in memory (the same address, not equal bytes),
/// and hashes every other step itself: what is measured is still the plan.
#[derive(Debug, Clone)]
pub struct PageDigests<'a> {
    data: &'a [u8],
    digests: Vec<[u8; 48]>,
}

impl<'a> PageDigests<'a> {
    /// Hashes every page of `data` on the calling thread (a last partial page is hashed
    /// as it is, and is used only for a step that ends where `data` ends).
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            digests: hash_pages(data),
        }
    }

    /// The digests of `part`'s pages, when `part` is a page-aligned slice of the hashed
    /// buffer itself.
    fn lookup(&self, part: &[u8]) -> Option<&[[u8; 48]]> {
        let offset = part
            .as_ptr()
            .addr()
            .checked_sub(self.data.as_ptr().addr())?;
        let end = offset.checked_add(part.len())?;
        let aligned = offset.is_multiple_of(PAGE)
            && (part.len().is_multiple_of(PAGE) || end == self.data.len());
        if !aligned || end > self.data.len() {
            return None;
        }
        self.digests.get(offset / PAGE..end.div_ceil(PAGE))
    }
}

fn hash_pages(data: &[u8]) -> Vec<[u8; 48]> {
    data.chunks(PAGE)
        .map(|p| Sha384::digest(p).into())
        .collect()
}

/// Measures `plan`. A plain (unprotected) plan has no launch measurement.
pub fn measure(plan: &LaunchPlan<'_>, opts: &Options<'_>) -> Result<Measurement> {
    // The folds below read every vCPU's x86 registers (a VMSA each).
    if plan.vcpus.iter().any(|v| v.x86().is_none()) {
        return Err(FirmwareError::Unsupported(
            "an SEV plan's vCPUs are x86 vCPUs".into(),
        ));
    }
    match plan.tee() {
        Tee::Snp => {
            if let Some(s) = plan.steps.iter().find(|s| s.kind.snp_page_type().is_none()) {
                return Err(FirmwareError::Unsupported(format!(
                    "an SNP plan cannot hold {} pages (at {:#x})",
                    s.kind.name(),
                    s.gpa
                )));
            }
            Ok(snp(plan, opts))
        }
        Tee::Tdx => Err(FirmwareError::Unsupported(
            "a TDX plan is measured by measure::tdx".into(),
        )),
        Tee::SevEs | Tee::Sev => Ok(sev(plan, opts)),
        Tee::None => Err(FirmwareError::Unsupported(
            "a plain (unprotected) launch has no hardware measurement".into(),
        )),
        Tee::Cca | Tee::Sgx => Err(FirmwareError::Unsupported(format!(
            "a {} plan is not measured by measure::sev",
            plan.tee().name()
        ))),
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

fn snp(plan: &LaunchPlan<'_>, opts: &Options<'_>) -> Measurement {
    let mut ld = SnpDigest([0u8; 48]);
    let mut components = Vec::new();
    let mut firmware_digest = None;
    for step in &plan.steps {
        match (step.origin, opts.firmware_digest) {
            (Origin::Firmware, Some(seed)) => ld.0 = seed,
            _ => snp_step(&mut ld, step, opts),
        }
        if step.origin == Origin::Firmware {
            firmware_digest = Some(ld.0);
        }
        if opts.explain {
            components.push(component(plan, step, Some(&ld.0)));
        }
    }
    // Application processors usually share one reset state: a VMSA page equal to the
    // one before it has the same digest.
    let mut previous: Option<(Box<[u8; vmsa::VMSA_SIZE]>, [u8; 48])> = None;
    for (i, vcpu) in plan.vcpus.iter().filter_map(VcpuState::x86).enumerate() {
        let page = vmsa::page(vcpu, plan.sev_features());
        let digest = match &previous {
            Some((p, d)) if p[..] == page[..] => *d,
            _ => Sha384::digest(&page[..]).into(),
        };
        ld.update(&digest, 2, vmsa::VMSA_GPA);
        if opts.explain {
            components.push(vmsa_component(i, &page[..], Some(&ld.0)));
        }
        previous = Some((page, digest));
    }
    Measurement {
        tee: plan.tee(),
        digest: ld.0.to_vec(),
        firmware_digest,
        components,
    }
}

fn snp_step(ld: &mut SnpDigest, step: &Step<'_>, opts: &Options<'_>) {
    // `measure` checked that every step of an SNP plan has an SNP page type.
    let ty = step.kind.snp_page_type().unwrap_or_default();
    let pages = step.len / 4096;
    if step.kind == PageKind::Normal {
        let prehashed = opts.prehashed.and_then(|p| p.lookup(&step.data));
        let hashed;
        let digests = match prehashed {
            Some(d) => d,
            None => {
                hashed = page_digests(&step.data, opts.threads);
                &hashed[..]
            }
        };
        for (i, contents) in (0u64..).zip(digests) {
            ld.update(
                contents,
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
    let pages = data.len().div_ceil(PAGE);
    let per_thread = pages.div_ceil(threads.max(1)).max(MIN_PAGES_PER_THREAD);
    if per_thread >= pages {
        return hash_pages(data);
    }
    std::thread::scope(|scope| {
        let mut parts = data.chunks(per_thread.saturating_mul(PAGE));
        let first = parts.next().unwrap_or_default();
        let handles: Vec<_> = parts
            .map(|part| scope.spawn(move || hash_pages(part)))
            .collect();
        let mut out = hash_pages(first);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // A hashing thread cannot panic short of allocation failure; if one
                // did, hash everything here rather than lose its part.
                Err(_) => return hash_pages(data),
            }
        }
        out
    })
}

/// Below this many pages per thread, spawning costs more than it saves.
const MIN_PAGES_PER_THREAD: usize = 64;

fn sev(plan: &LaunchPlan<'_>, opts: &Options<'_>) -> Measurement {
    let mut h = Sha256::new();
    let mut components = Vec::new();
    for step in &plan.steps {
        h.update(&step.data);
        if opts.explain {
            components.push(component(plan, step, None));
        }
    }
    for (i, vcpu) in plan.vcpus.iter().filter_map(VcpuState::x86).enumerate() {
        let page = vmsa::page(vcpu, plan.sev_features());
        h.update(&page[..]);
        if opts.explain {
            components.push(vmsa_component(i, &page[..], None));
        }
    }
    Measurement {
        tee: plan.tee(),
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
        Origin::KernelHashes => match plan.kernel_hashes() {
            Some(k) => format!(
                "kernel hashes table (kernel sha256 {}, initrd sha256 {}, cmdline sha256 {})",
                encode(k.kernel),
                encode(k.initrd),
                encode(k.cmdline)
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
        Origin::AcpiTables => "ACPI tables".to_owned(),
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
        sha256: (step.kind == PageKind::Normal).then(|| encode(Sha256::digest(&step.data))),
        launch_digest: ld.map(encode),
    }
}

fn vmsa_component(i: usize, page: &[u8], ld: Option<&[u8; 48]>) -> Component {
    Component {
        name: format!("VMSA vCPU {i}"),
        gpa: ld.map(|_| vmsa::VMSA_GPA),
        len: 4096,
        page_type: "vmsa",
        sha256: Some(encode(Sha256::digest(page))),
        launch_digest: ld.map(encode),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::borrow::Cow;

    fn plan(data: &[u8]) -> LaunchPlan<'_> {
        LaunchPlan {
            steps: vec![Step {
                gpa: 0xffc0_0000,
                len: crate::bytes::to_u64(data.len()),
                kind: PageKind::Normal,
                data: Cow::Borrowed(data),
                origin: Origin::Firmware,
            }],
            vcpus: Vec::new(),
            vcpu_count: 1,
            ram: Vec::new(),
            fw_cfg: crate::fwcfg::FwCfg::default(),
            part: crate::plan::TeePart::Snp(crate::plan::SevPart {
                sev_features: 1,
                kernel_hashes: None,
            }),
        }
    }

    fn digest(plan: &LaunchPlan<'_>, prehashed: Option<&PageDigests<'_>>) -> Vec<u8> {
        let opts = Options {
            prehashed,
            ..Options::default()
        };
        measure(plan, &opts).unwrap().digest
    }

    fn buffer() -> Vec<u8> {
        (0..4 * PAGE)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect()
    }

    #[test]
    fn prehashed_pages_give_the_same_digest() {
        let data = buffer();
        let honest = digest(&plan(&data), None);
        let pre = PageDigests::new(&data);
        assert_eq!(digest(&plan(&data), Some(&pre)), honest);
        // A step over the middle two pages takes the middle two digests.
        let middle = &data[PAGE..3 * PAGE];
        assert_eq!(
            digest(&plan(middle), Some(&pre)),
            digest(&plan(middle), None)
        );
    }

    /// Digests are taken only for the very memory they were computed from: a wrong
    /// table shows whether it was used.
    #[test]
    fn prehashed_digests_are_used_only_for_the_same_memory() {
        let data = buffer();
        let wrong = PageDigests {
            data: &data,
            digests: vec![[0xee; 48]; 4],
        };
        // The same memory: the table is used (and here it is wrong).
        assert_ne!(
            digest(&plan(&data), Some(&wrong)),
            digest(&plan(&data), None)
        );
        // Equal bytes elsewhere in memory: hashed, not looked up.
        let copy = data.clone();
        assert_eq!(
            digest(&plan(&copy), Some(&wrong)),
            digest(&plan(&copy), None)
        );
        // Not page-aligned within the buffer, or running past its end: hashed.
        let unaligned = &data[1..=PAGE];
        assert!(wrong.lookup(unaligned).is_none());
        assert_eq!(
            digest(&plan(unaligned), Some(&wrong)),
            digest(&plan(unaligned), None)
        );
        assert!(wrong.lookup(&data[..2 * PAGE]).is_some());
        let bigger = buffer().repeat(2);
        let inner = PageDigests::new(&bigger[..4 * PAGE]);
        assert!(inner.lookup(&bigger[..8 * PAGE]).is_none());
        assert!(inner.lookup(&bigger[4 * PAGE..5 * PAGE]).is_none());
    }
}
