//! Where VMMs put a realm's images, and what they measure: the realm parameters a VMM
//! asks for from the host's capabilities, its RAM, the kernel, initrd, firmware and DTB
//! it populates, and the first REC's registers. Each layout follows its VMM's source as
//! veraison/cca-realm-measurements models it (docs/realm-vm.md; src/kvmtool.rs,
//! src/qemu.rs, src/cloud_hypervisor.rs), and is checked against that tool's tables
//! (../shared/reference/cca_ref.tsv).

use super::{Data, Hash, Interface, PlanError, RealmParams, RealmPlan, Rec, fdt};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// The host's capabilities (hardware, KVM and RMM together), as far as a realm's
/// parameters go. Unset values are not offered: 0 counters, no SVE, no PMU, no LPA2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCaps {
    /// IPA bits.
    pub ipa_bits: Option<u8>,
    /// Breakpoints (2-64).
    pub num_bps: Option<u8>,
    /// Watchpoints (2-64).
    pub num_wps: Option<u8>,
    /// SVE vector length in bits (0, or a power of two 128-2048).
    pub sve_vl: Option<u16>,
    /// PMU counters (0-31).
    pub pmu_num_ctrs: Option<u8>,
    /// PMU support.
    pub pmu: Option<bool>,
    /// LPA2 support.
    pub lpa2: Option<bool>,
}

fn lower<T: Copy + PartialOrd>(slot: &mut Option<T>, v: Option<T>) {
    if let Some(v) = v {
        match slot {
            Some(old) if *old <= v => {}
            _ => *slot = Some(v),
        }
    }
}

fn set<T: Copy>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

impl HostCaps {
    /// Reads a capabilities file: `key = value` lines (`ipa_bits`, `num_bps`,
    /// `num_wps`, `sve_vl`, `pmu_num_ctrs`, `pmu`, `lpa2`), `#` comments; an unknown key
    /// or a value out of range is refused, naming its line.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let mut c = HostCaps::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let n = i.saturating_add(1);
            let bad = |why: &str| PlanError(format!("line {n}: {why}: {raw:?}"));
            let (k, v) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| bad("not `key = value`"))?;
            let num = |lo: u64, hi: u64| -> Result<u64, PlanError> {
                v.parse::<u64>()
                    .ok()
                    .filter(|x| (lo..=hi).contains(x))
                    .ok_or_else(|| bad(&format!("{k} must be {lo}-{hi}")))
            };
            let boolean = || match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(&format!("{k} must be true or false"))),
            };
            let small = |x: u64| u8::try_from(x).unwrap_or(u8::MAX);
            match k {
                "ipa_bits" => c.ipa_bits = Some(small(num(32, 52)?)),
                "num_bps" => c.num_bps = Some(small(num(2, 64)?)),
                "num_wps" => c.num_wps = Some(small(num(2, 64)?)),
                "pmu_num_ctrs" => c.pmu_num_ctrs = Some(small(num(0, 31)?)),
                "sve_vl" => {
                    let vl = num(0, 2048)?;
                    if vl != 0 && !(vl.is_power_of_two() && vl >= 128) {
                        return Err(bad("sve_vl must be 0 or a power of two 128-2048"));
                    }
                    c.sve_vl = Some(u16::try_from(vl).unwrap_or(0));
                }
                "pmu" => c.pmu = Some(boolean()?),
                "lpa2" => c.lpa2 = Some(boolean()?),
                _ => return Err(bad("unknown capability")),
            }
        }
        Ok(c)
    }

    /// Lowers each capability `other` gives (a later layer can only take away: the
    /// host's hardware, KVM and the RMM each cap what a realm may use).
    pub fn restrict(&mut self, other: &HostCaps) {
        lower(&mut self.ipa_bits, other.ipa_bits);
        lower(&mut self.num_bps, other.num_bps);
        lower(&mut self.num_wps, other.num_wps);
        lower(&mut self.sve_vl, other.sve_vl);
        lower(&mut self.pmu_num_ctrs, other.pmu_num_ctrs);
        lower(&mut self.pmu, other.pmu);
        lower(&mut self.lpa2, other.lpa2);
    }

    /// Sets each capability `other` gives (command-line options).
    pub fn set(&mut self, other: &HostCaps) {
        set(&mut self.ipa_bits, other.ipa_bits);
        set(&mut self.num_bps, other.num_bps);
        set(&mut self.num_wps, other.num_wps);
        set(&mut self.sve_vl, other.sve_vl);
        set(&mut self.pmu_num_ctrs, other.pmu_num_ctrs);
        set(&mut self.pmu, other.pmu);
        set(&mut self.lpa2, other.lpa2);
    }

    /// The realm parameters for a VMM that needs `ipa_bits` (the host's, if lower).
    fn params(&self, ipa_bits: u8, hash: Hash) -> Result<RealmParams, PlanError> {
        let need = |v: Option<u8>, what: &str| {
            v.ok_or_else(|| {
                PlanError(format!(
                    "the host's {what} is not known: give a host configuration (--host-config) \
                     or --{}",
                    what.replace('_', "-")
                ))
            })
        };
        let pmu = self.pmu.unwrap_or(false);
        Ok(RealmParams {
            lpa2: self.lpa2.unwrap_or(false),
            sve_vl: self.sve_vl.unwrap_or(0),
            pmu,
            ipa_bits: self.ipa_bits.map_or(ipa_bits, |h| h.min(ipa_bits)),
            num_bps: need(self.num_bps, "num_bps")?,
            num_wps: need(self.num_wps, "num_wps")?,
            // Counters exist only with the PMU (RMM 1.0 B4.3.9: pmu_num_ctrs is read
            // only when RMI_REALM_FLAGS_PMU is set); the VMM asks for none without it.
            pmu_num_ctrs: if pmu {
                self.pmu_num_ctrs.unwrap_or(0)
            } else {
                0
            },
            hash,
        })
    }
}

/// The VMM whose layout a realm is predicted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vmm {
    /// kvmtool (lkvm run --realm).
    Kvmtool,
    /// QEMU's virt machine (-object rme-guest).
    Qemu,
    /// cloud-hypervisor (--platform measurement_algo=...).
    CloudHv,
    /// cvm's own launcher on KVM's v14 realm interface: kvmtool's memory layout and DTB,
    /// with the realm parameters that interface sets ([`cvm`]).
    Cvm,
}

/// What a realm is launched from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The VMM.
    pub vmm: Vmm,
    /// The host's capabilities.
    pub caps: HostCaps,
    /// The measurement hash.
    pub hash: Hash,
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in bytes.
    pub memory: u64,
    /// The kernel (an arm64 Linux Image, or gzip of one).
    pub kernel: Option<&'a [u8]>,
    /// The initrd.
    pub initrd: Option<&'a [u8]>,
    /// Firmware, loaded at the start of RAM.
    pub firmware: Option<&'a [u8]>,
    /// Extra kernel parameters.
    pub cmdline: Option<&'a str>,
    /// The GIC has an ITS (kvmtool's `--irqchip gicv3-its` and QEMU virt's default).
    pub its: bool,
}

/// The arm64 Linux Image header (Documentation/arch/arm64/booting.rst): text_offset
/// at 8, the magic "ARM\x64" at 56.
pub struct Image {
    /// The image's bytes (decompressed).
    pub bytes: Vec<u8>,
    /// Where in RAM it is loaded (from the 2 MiB-aligned base).
    pub text_offset: u64,
    /// The memory it occupies from there, BSS included (the header's image_size).
    pub load_size: u64,
}

/// The largest decompressed kernel accepted.
const MAX_KERNEL: u64 = 512 * MIB;

impl Image {
    /// Reads an Image, decompressing gzip first (kvmtool and QEMU do).
    pub fn parse(bytes: &[u8]) -> Result<Self, PlanError> {
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .take(MAX_KERNEL.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| PlanError(format!("kernel: gzip: {e}")))?;
            if u64::try_from(out.len()).unwrap_or(u64::MAX) > MAX_KERNEL {
                return Err(PlanError(format!(
                    "kernel: more than {MAX_KERNEL} bytes decompressed"
                )));
            }
            out
        } else {
            bytes.to_vec()
        };
        let field = |at: usize, n: usize| bytes.get(at..at.saturating_add(n));
        let magic = field(56, 4).ok_or_else(|| {
            PlanError(format!(
                "kernel: {} bytes, shorter than the 64-byte arm64 Image header",
                bytes.len()
            ))
        })?;
        if magic != b"ARM\x64" {
            return Err(PlanError(
                "kernel: no arm64 Image magic (\"ARM\\x64\" at offset 56)".into(),
            ));
        }
        let u64_at = |at: usize| {
            field(at, 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let (text_offset, load_size) = (u64_at(8), u64_at(16));
        Ok(Image {
            bytes,
            text_offset,
            load_size,
        })
    }
}

/// Data the VMM populates with its content measured (RMI_MEASURE_CONTENT).
fn measured(name: &str, ipa: u64, bytes: Vec<u8>) -> Data {
    Data {
        name: name.into(),
        ipa,
        bytes,
        measured: true,
    }
}

/// The plan of a realm with RAM at `ram`, `data` populated, and its first REC entered at
/// `pc` with x0 (the DTB's address, or 0 for firmware) as the VMMs set it.
fn realm(params: RealmParams, ram: (u64, u64), data: Vec<Data>, pc: u64, x0: u64) -> RealmPlan {
    RealmPlan {
        interface: Interface::Rmm1,
        params,
        ram: vec![ram],
        data,
        rec: Some(Rec {
            pc,
            gprs: [x0, 0, 0, 0, 0, 0, 0, 0],
        }),
    }
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    v.checked_add(a.checked_sub(1)?)
        .map(|x| x & !(a.wrapping_sub(1)))
}

/// The IPA bits a VMM asks for: enough for the top of RAM, at least 33.
fn ipa_bits_for(top: u64) -> u8 {
    let last = top.saturating_sub(1);
    let bits = u8::try_from(last.checked_ilog2().unwrap_or(0)).unwrap_or(63);
    bits.max(32).saturating_add(1)
}

/// The realm plan for `inputs`, and the DTB the VMM builds for it.
pub fn plan(inputs: &Inputs<'_>) -> Result<(RealmPlan, Vec<u8>), PlanError> {
    match inputs.vmm {
        Vmm::Kvmtool => kvmtool(inputs),
        Vmm::Qemu => qemu(inputs),
        Vmm::CloudHv => cloud_hv(inputs),
        Vmm::Cvm => cvm(inputs),
    }
}

/// cvm's own realms: kvmtool's layout (RAM at 2 GiB, the kernel at its text_offset, the
/// initrd and the 64 KiB DTB below 256 MiB, x0 the DTB) created through KVM's v14
/// interface, whose RMI_REALM_CREATE parameters KVM fills in itself ("arm64: Support for
/// Arm CCA in KVM" v14, patches 28, 39 and 41/44): s2sz the VM's IPA bits, hash_algo 0
/// (SHA-256; selecting it is dropped in v14), LPA2 when the host kernel uses it, the
/// breakpoints and watchpoints of the vCPUs' ID_AA64DFR0_EL1 (by default the RMM's),
/// SVE only when the VMM enables it on the vCPUs (cvm does not), and no PMU (dropped in
/// v14). The measurement follows [`Interface::KvmRmiV14`].
fn cvm(i: &Inputs<'_>) -> Result<(RealmPlan, Vec<u8>), PlanError> {
    if i.hash != Hash::Sha256 {
        return Err(PlanError(
            "--vmm cvm: KVM's v14 realm interface measures with SHA-256 only".into(),
        ));
    }
    let mut caps = i.caps.clone();
    caps.pmu = Some(false);
    caps.pmu_num_ctrs = Some(0);
    caps.sve_vl = Some(0);
    let inputs = Inputs { caps, ..i.clone() };
    let (mut plan, dtb) = kvmtool(&inputs)?;
    plan.interface = Interface::KvmRmiV14;
    Ok((plan, dtb))
}

// kvmtool (arm/include/arm-common/kvm-arch.h, arm/fdt.c, arm/kvm.c as
// cca-realm-measurements' src/kvmtool.rs models them).
const KVMTOOL_MEM_BASE: u64 = 0x8000_0000;
const KVMTOOL_FDT_SIZE: usize = 0x10000;
/// The DTB's room and alignment slack below its limit.
const KVMTOOL_FDT_ROOM: u64 = KVMTOOL_FDT_ALIGN + 0x10000;
const KVMTOOL_FDT_ALIGN: u64 = 2 * MIB;
const KVMTOOL_FDT_LIMIT: u64 = KVMTOOL_MEM_BASE + 256 * MIB;
const KVMTOOL_GIC_PHANDLE: u32 = 1;
const KVMTOOL_ITS_PHANDLE: u32 = 2;
const KVMTOOL_GIC_DIST_BASE: u64 = 0x3fff_0000;
const KVMTOOL_GIC_DIST_SIZE: u64 = 0x1_0000;
const KVMTOOL_GIC_REDIST_SIZE: u64 = 0x2_0000;
const KVMTOOL_GIC_ITS_SIZE: u64 = 128 * KIB;
const KVMTOOL_UART_BASE: u64 = 0x0100_0000;
const KVMTOOL_UART_SIZE: u64 = 8;
const KVMTOOL_UART_STRIDE: u64 = 0x1000;
const KVMTOOL_RTC_BASE: u64 = 0x0101_0000;
const KVMTOOL_RTC_SIZE: u64 = 2;
const KVMTOOL_PCI_CFG_BASE: u64 = 0x4000_0000;
const KVMTOOL_PCI_CFG_SIZE: u64 = 1 << 28;
const KVMTOOL_PCI_MMIO_BASE: u64 = KVMTOOL_PCI_CFG_BASE + KVMTOOL_PCI_CFG_SIZE;
const KVMTOOL_PCI_MMIO_SIZE: u64 = KVMTOOL_MEM_BASE - KVMTOOL_PCI_MMIO_BASE;
const KVMTOOL_IOPORT_SIZE: u64 = 0x1_0000;
const KVMTOOL_SPI_PCI: u32 = 64;

/// kvmtool's GICv3 for `vcpus` (its DTB's, and what the VMM gives KVM): the
/// distributor's base, and the redistributors' (one 128 KiB frame per vCPU below it).
pub fn kvmtool_gic(vcpus: u32) -> (u64, u64) {
    let redist = u64::from(vcpus).saturating_mul(KVMTOOL_GIC_REDIST_SIZE);
    (
        KVMTOOL_GIC_DIST_BASE,
        KVMTOOL_GIC_DIST_BASE.saturating_sub(redist),
    )
}

fn dtb_error(e: vm_fdt::Error) -> PlanError {
    PlanError(format!("DTB: {e}"))
}

fn kvmtool(i: &Inputs<'_>) -> Result<(RealmPlan, Vec<u8>), PlanError> {
    let mem = i.memory;
    if mem == 0 || !mem.is_multiple_of(2 * MIB) {
        return Err(PlanError(format!(
            "kvmtool: RAM of {mem} bytes is not a multiple of 2 MiB"
        )));
    }
    let top = KVMTOOL_MEM_BASE
        .checked_add(mem)
        .ok_or_else(|| PlanError("RAM too large".into()))?;
    let params = i.caps.params(ipa_bits_for(top), i.hash)?;
    let bad_layout = || PlanError("kvmtool: the images do not fit in RAM".into());
    let dtb_base = top
        .min(KVMTOOL_FDT_LIMIT)
        .checked_sub(KVMTOOL_FDT_ROOM)
        .and_then(|b| align_up(b, KVMTOOL_FDT_ALIGN))
        .filter(|b| *b >= KVMTOOL_MEM_BASE)
        .ok_or_else(bad_layout)?;
    let mut data = Vec::new();
    let mut pc = 0;
    if let Some(k) = i.kernel {
        let image = Image::parse(k)?;
        pc = KVMTOOL_MEM_BASE;
        data.push(measured(
            "kernel",
            KVMTOOL_MEM_BASE
                .checked_add(image.text_offset)
                .ok_or_else(bad_layout)?,
            image.bytes,
        ));
    }
    let mut initrd_range = None;
    if let Some(rd) = i.initrd {
        let len = u64::try_from(rd.len()).map_err(|_| bad_layout())?;
        let start = dtb_base
            .checked_sub(len.saturating_add(4))
            .and_then(|s| align_up(s, 4))
            .ok_or_else(bad_layout)?;
        initrd_range = Some((start, len));
        data.push(measured("initrd", start, rd.to_vec()));
    }
    if let Some(fw) = i.firmware {
        pc = KVMTOOL_MEM_BASE;
        data.push(measured("firmware", KVMTOOL_MEM_BASE, fw.to_vec()));
    }
    let mut bootargs = String::from(" console=hvc0 root=/dev/vda rw ");
    if let Some(extra) = i.cmdline.filter(|c| !c.is_empty()) {
        bootargs.push(' ');
        bootargs.push_str(extra);
    }
    let dtb = kvmtool_dtb(i, mem, params.pmu, &bootargs, initrd_range).map_err(dtb_error)?;
    if dtb.len() > KVMTOOL_FDT_SIZE {
        return Err(PlanError(format!(
            "kvmtool: the DTB is {} bytes, more than its {KVMTOOL_FDT_SIZE}",
            dtb.len()
        )));
    }
    let mut padded = dtb.clone();
    padded.resize(KVMTOOL_FDT_SIZE, 0);
    data.push(measured("dtb", dtb_base, padded));
    Ok((
        realm(params, (KVMTOOL_MEM_BASE, mem), data, pc, dtb_base),
        dtb,
    ))
}

fn kvmtool_dtb(
    i: &Inputs<'_>,
    mem: u64,
    pmu: bool,
    bootargs: &str,
    initrd: Option<(u64, u64)>,
) -> fdt::Result<Vec<u8>> {
    let (mut f, root) = fdt::start(
        (KVMTOOL_MEM_BASE, mem),
        i.vcpus,
        KVMTOOL_GIC_PHANDLE,
        Some(bootargs),
        initrd,
    )?;
    let (_, redist_base) = kvmtool_gic(i.vcpus);
    let redist_size = KVMTOOL_GIC_DIST_BASE.saturating_sub(redist_base);
    let gic = f.begin_node("intc")?;
    f.property_string("compatible", "arm,gic-v3")?;
    f.property_u32("#interrupt-cells", 3)?;
    f.property_null("interrupt-controller")?;
    f.property_array_u64(
        "reg",
        &[
            KVMTOOL_GIC_DIST_BASE,
            KVMTOOL_GIC_DIST_SIZE,
            redist_base,
            redist_size,
        ],
    )?;
    f.property_phandle(KVMTOOL_GIC_PHANDLE)?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 2)?;
    f.property_null("ranges")?;
    if i.its {
        let its = f.begin_node("msic")?;
        f.property_string("compatible", "arm,gic-v3-its")?;
        f.property_null("msi-controller")?;
        f.property_phandle(KVMTOOL_ITS_PHANDLE)?;
        f.property_array_u64(
            "reg",
            &[
                redist_base.saturating_sub(KVMTOOL_GIC_ITS_SIZE),
                KVMTOOL_GIC_ITS_SIZE,
            ],
        )?;
        f.end_node(its)?;
    }
    f.end_node(gic)?;
    fdt::timer(&mut f, &[13, 14, 11], fdt::IRQ_LEVEL_LO)?;
    if pmu {
        fdt::pmu(&mut f, 7)?;
    }
    for n in 0..4u32 {
        let addr =
            KVMTOOL_UART_BASE.saturating_add(u64::from(n).saturating_mul(KVMTOOL_UART_STRIDE));
        let s = fdt::begin_at(&mut f, "U6_16550A", addr)?;
        f.property_string("compatible", "ns16550a")?;
        f.property_array_u64("reg", &[addr, KVMTOOL_UART_SIZE])?;
        f.property_array_u32("interrupts", &[fdt::IRQ_SPI, n, fdt::IRQ_LEVEL_HI])?;
        f.property_u32("clock-frequency", 1_843_200)?;
        f.end_node(s)?;
    }
    let rtc = fdt::begin_at(&mut f, "rtc", KVMTOOL_RTC_BASE)?;
    f.property_string("compatible", "motorola,mc146818")?;
    f.property_array_u64("reg", &[KVMTOOL_RTC_BASE, KVMTOOL_RTC_SIZE])?;
    f.end_node(rtc)?;
    let pci = fdt::begin_at(&mut f, "pci", KVMTOOL_PCI_CFG_BASE)?;
    f.property_string("device_type", "pci")?;
    f.property_u32("#address-cells", 3)?;
    f.property_u32("#size-cells", 2)?;
    f.property_null("dma-coherent")?;
    f.property_array_u32("bus-range", &[0, 0])?;
    f.property_string("compatible", "pci-host-ecam-generic")?;
    f.property_array_u64("reg", &[KVMTOOL_PCI_CFG_BASE, KVMTOOL_PCI_CFG_SIZE])?;
    f.property_array_u32(
        "ranges",
        &fdt::pci_ranges(
            (0, KVMTOOL_IOPORT_SIZE),
            (KVMTOOL_PCI_MMIO_BASE, KVMTOOL_PCI_MMIO_SIZE),
            None,
        ),
    )?;
    let mut map = Vec::new();
    for slot in 0..32u32 {
        map.extend_from_slice(&[
            slot << 11,
            0,
            0,
            1,
            KVMTOOL_GIC_PHANDLE,
            0,
            0,
            fdt::IRQ_SPI,
            KVMTOOL_SPI_PCI.saturating_add(slot),
            fdt::IRQ_LEVEL_HI,
        ]);
    }
    f.property_array_u32("interrupt-map", &map)?;
    f.property_array_u32("interrupt-map-mask", &[0x1f << 11, 0, 0, 7])?;
    f.property_u32("#interrupt-cells", 1)?;
    if i.its {
        f.property_array_u32("msi-map", &[0, KVMTOOL_ITS_PHANDLE, 0, 0x10000])?;
    }
    f.end_node(pci)?;
    f.end_node(root)?;
    f.finish()
}

// QEMU's virt machine (hw/arm/virt.c, virt 9.1, as cca-realm-measurements' src/qemu.rs
// models it).
const QEMU_MEM_BASE: u64 = 0x4000_0000;
const QEMU_GIC_DIST_BASE: u64 = 0x0800_0000;
const QEMU_GIC_DIST_SIZE: u64 = 0x1_0000;
const QEMU_GIC_ITS_BASE: u64 = 0x0808_0000;
const QEMU_GIC_ITS_SIZE: u64 = 0x2_0000;
const QEMU_GIC_REDIST_BASE: u64 = 0x080a_0000;
const QEMU_GIC_REDIST_SIZE: u64 = 0x00f6_0000;
const QEMU_HIGH_REDIST_BASE: u64 = 0x40_0000_0000;
const QEMU_HIGH_REDIST_SIZE: u64 = 64 * MIB;
const QEMU_UART_BASE: u64 = 0x0900_0000;
const QEMU_UART_SIZE: u64 = 0x1000;
const QEMU_RTC_BASE: u64 = 0x0901_0000;
const QEMU_RTC_SIZE: u64 = 0x1000;
const QEMU_FW_CFG_BASE: u64 = 0x0902_0000;
const QEMU_FW_CFG_SIZE: u64 = 0x18;
const QEMU_VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
const QEMU_VIRTIO_MMIO_SIZE: u64 = 0x200;
const QEMU_PLATFORM_BUS_BASE: u64 = 0x0c00_0000;
const QEMU_PLATFORM_BUS_SIZE: u64 = 0x0200_0000;
const QEMU_PCI_MMIO_BASE: u64 = 0x1000_0000;
const QEMU_PCI_MMIO_SIZE: u64 = 0x2eff_0000;
const QEMU_PCI_IOPORT_BASE: u64 = 0x3eff_0000;
const QEMU_PCI_IOPORT_SIZE: u64 = 0x1_0000;
const QEMU_HIGH_PCI_CFG_BASE: u64 = 0x40_1000_0000;
const QEMU_HIGH_PCI_CFG_SIZE: u64 = 256 * MIB;
const QEMU_HIGH_PCI_MMIO_BASE: u64 = 0x80_0000_0000;
const QEMU_HIGH_PCI_MMIO_SIZE: u64 = 512 << 30;
const QEMU_BASE_PHANDLE: u32 = 0x8000;
const QEMU_SPI_UART: u32 = 1;
const QEMU_SPI_RTC: u32 = 2;
const QEMU_SPI_PCIE: u32 = 3;
const QEMU_SPI_MMIO: u32 = 16;
const QEMU_PPI_PMU: u32 = 7;
/// The virt memory map's high regions need 40 IPA bits; QEMU takes one more.
const QEMU_IPA_BITS: u8 = 41;
/// The most RAM the virt map holds below its high regions.
const QEMU_MAX_RAM: u64 = 255 << 30;

fn qemu(i: &Inputs<'_>) -> Result<(RealmPlan, Vec<u8>), PlanError> {
    let mem = i.memory;
    if mem == 0 || !mem.is_multiple_of(super::GRANULE) || mem > QEMU_MAX_RAM {
        return Err(PlanError(format!(
            "QEMU: RAM of {mem} bytes is not whole granules up to 255 GiB"
        )));
    }
    match i.caps.ipa_bits {
        Some(b) if b >= QEMU_IPA_BITS => {}
        Some(b) => {
            return Err(PlanError(format!(
                "QEMU: the virt memory map needs 41 IPA bits, the host offers {b}"
            )));
        }
        None => {
            return Err(PlanError(
                "QEMU: the host's IPA bits are not known (the virt memory map needs 41): give \
                 --host-config or --ipa-bits"
                    .into(),
            ));
        }
    }
    let params = i.caps.params(QEMU_IPA_BITS, i.hash)?;
    let bad_layout = || PlanError("QEMU: the images do not fit in RAM".into());
    let mut data = Vec::new();
    let mut dtb_start = QEMU_MEM_BASE;
    let mut initrd_range = None;
    let firmware = i.firmware.is_some();
    if let Some(k) = i.kernel {
        let image = Image::parse(k)?;
        let kernel_start = QEMU_MEM_BASE
            .checked_add(image.text_offset)
            .ok_or_else(bad_layout)?;
        let start = QEMU_MEM_BASE
            .saturating_add((mem / 2).min(128 * MIB))
            .max(kernel_start.saturating_add(image.load_size))
            .min(u64::MAX - super::GRANULE);
        let initrd_start = align_up(start, 4 * KIB).ok_or_else(bad_layout)?;
        let mut initrd_size = 0;
        // With firmware, QEMU hands the kernel and initrd to it through fw_cfg: they are
        // not in the realm's memory at launch, and the firmware measures them (into a
        // REM), not the RMM.
        if !firmware {
            data.push(measured("kernel", kernel_start, image.bytes));
        }
        if let Some(rd) = i.initrd {
            initrd_size = u64::try_from(rd.len()).map_err(|_| bad_layout())?;
            initrd_range = Some((initrd_start, initrd_size));
            if !firmware {
                data.push(measured("initrd", initrd_start, rd.to_vec()));
            }
        }
        // With firmware the images stay in fw_cfg and the DTB at the start of RAM.
        if !firmware {
            dtb_start = initrd_start
                .checked_add(initrd_size)
                .and_then(|e| align_up(e, 2 * MIB))
                .ok_or_else(bad_layout)?;
        }
    }
    if let Some(fw) = i.firmware {
        data.push(measured("firmware", 0, fw.to_vec()));
    }
    let top = QEMU_MEM_BASE.saturating_add(mem);
    let (pc, x0) = if firmware {
        (0, 0)
    } else {
        (QEMU_MEM_BASE, dtb_start)
    };
    let bootargs = i.cmdline;
    let dtb =
        qemu_dtb(i.vcpus, mem, params.pmu, i.its, bootargs, initrd_range).map_err(dtb_error)?;
    if dtb_start.saturating_add(u64::try_from(dtb.len()).unwrap_or(u64::MAX)) > top {
        return Err(bad_layout());
    }
    data.push(measured("dtb", dtb_start, dtb.clone()));
    Ok((realm(params, (QEMU_MEM_BASE, mem), data, pc, x0), dtb))
}

fn qemu_dtb(
    vcpus: u32,
    mem: u64,
    pmu: bool,
    its: bool,
    bootargs: Option<&str>,
    initrd: Option<(u64, u64)>,
) -> fdt::Result<Vec<u8>> {
    let gic_phandle = QEMU_BASE_PHANDLE.saturating_add(vcpus).saturating_add(1);
    let its_phandle = gic_phandle.saturating_add(1);
    let clock = QEMU_BASE_PHANDLE;
    let (mut f, root) = fdt::start((QEMU_MEM_BASE, mem), vcpus, gic_phandle, bootargs, initrd)?;
    let lo = |v: u64| u32::try_from(v & 0xffff_ffff).unwrap_or(0);
    let bus = fdt::begin_at(&mut f, "platform-bus", QEMU_PLATFORM_BUS_BASE)?;
    f.property_u32("interrupt-parent", gic_phandle)?;
    f.property_array_u32(
        "ranges",
        &[0, 0, lo(QEMU_PLATFORM_BUS_BASE), lo(QEMU_PLATFORM_BUS_SIZE)],
    )?;
    f.property_u32("#address-cells", 1)?;
    f.property_u32("#size-cells", 1)?;
    f.property_string_list(
        "compatible",
        vec!["qemu,platform".into(), "simple-bus".into()],
    )?;
    f.end_node(bus)?;
    let fw_cfg = fdt::begin_at(&mut f, "fw-cfg", QEMU_FW_CFG_BASE)?;
    f.property_null("dma-coherent")?;
    f.property_array_u64("reg", &[QEMU_FW_CFG_BASE, QEMU_FW_CFG_SIZE])?;
    f.property_string("compatible", "qemu,fw-cfg-mmio")?;
    f.end_node(fw_cfg)?;
    for n in 0..32u32 {
        let addr = QEMU_VIRTIO_MMIO_BASE
            .saturating_add(u64::from(n).saturating_mul(QEMU_VIRTIO_MMIO_SIZE));
        let v = fdt::begin_at(&mut f, "virtio_mmio", addr)?;
        f.property_null("dma-coherent")?;
        f.property_array_u32(
            "interrupts",
            &[
                fdt::IRQ_SPI,
                QEMU_SPI_MMIO.saturating_add(n),
                fdt::IRQ_EDGE_LO_HI,
            ],
        )?;
        f.property_array_u64("reg", &[addr, QEMU_VIRTIO_MMIO_SIZE])?;
        f.property_string("compatible", "virtio,mmio")?;
        f.end_node(v)?;
    }
    let pcie = fdt::begin_at(&mut f, "pcie", QEMU_PCI_MMIO_BASE)?;
    let mut map = Vec::new();
    for dev in 0..4u32 {
        for pin in 0..4u32 {
            map.extend_from_slice(&[
                dev << 11,
                0,
                0,
                pin.saturating_add(1),
                gic_phandle,
                0,
                0,
                fdt::IRQ_SPI,
                QEMU_SPI_PCIE.saturating_add(pin.saturating_add(dev) % 4),
                fdt::IRQ_LEVEL_HI,
            ]);
        }
    }
    f.property_array_u32("interrupt-map", &map)?;
    f.property_array_u32("interrupt-map-mask", &[3 << 11, 0, 0, 7])?;
    f.property_u32("#interrupt-cells", 1)?;
    f.property_array_u32(
        "ranges",
        &fdt::pci_ranges(
            (QEMU_PCI_IOPORT_BASE, QEMU_PCI_IOPORT_SIZE),
            (QEMU_PCI_MMIO_BASE, QEMU_PCI_MMIO_SIZE),
            Some((QEMU_HIGH_PCI_MMIO_BASE, QEMU_HIGH_PCI_MMIO_SIZE)),
        ),
    )?;
    f.property_array_u64("reg", &[QEMU_HIGH_PCI_CFG_BASE, QEMU_HIGH_PCI_CFG_SIZE])?;
    if its {
        f.property_array_u32("msi-map", &[0, its_phandle, 0, 0x10000])?;
    }
    fdt::ecam_tail(&mut f, 0xff)?;
    f.end_node(pcie)?;
    fdt::pl031(&mut f, (QEMU_RTC_BASE, QEMU_RTC_SIZE), clock, QEMU_SPI_RTC)?;
    let uart = fdt::begin_at(&mut f, "pl011", QEMU_UART_BASE)?;
    f.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])?;
    f.property_array_u64("reg", &[QEMU_UART_BASE, QEMU_UART_SIZE])?;
    f.property_array_u32("clocks", &[clock, clock])?;
    f.property_array_u32(
        "interrupts",
        &[fdt::IRQ_SPI, QEMU_SPI_UART, fdt::IRQ_LEVEL_HI],
    )?;
    f.property_string_list(
        "compatible",
        vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    f.end_node(uart)?;
    if pmu {
        fdt::pmu(&mut f, QEMU_PPI_PMU)?;
    }
    // GICv3 redistributors are 128 KiB each; past the low region's they go high.
    let mut gic_reg = vec![
        QEMU_GIC_DIST_BASE,
        QEMU_GIC_DIST_SIZE,
        QEMU_GIC_REDIST_BASE,
        QEMU_GIC_REDIST_SIZE,
    ];
    if u64::from(vcpus) > QEMU_GIC_REDIST_SIZE / 0x2_0000 {
        gic_reg.extend([QEMU_HIGH_REDIST_BASE, QEMU_HIGH_REDIST_SIZE]);
    }
    fdt::gic(
        &mut f,
        &gic_reg,
        its.then_some([QEMU_GIC_ITS_BASE, QEMU_GIC_ITS_SIZE]),
        (gic_phandle, its_phandle),
    )?;
    fdt::timer(&mut f, &[13, 14, 11], fdt::IRQ_LEVEL_HI)?;
    fdt::fixed_clock(&mut f, clock)?;
    f.end_node(root)?;
    f.finish()
}

// cloud-hypervisor (arch/src/aarch64/layout.rs and fdt.rs, as cca-realm-measurements'
// src/cloud_hypervisor.rs models them).
const CLOUDHV_MEM_START: u64 = 0x4000_0000;
const CLOUDHV_DT_BASE: u64 = CLOUDHV_MEM_START;
const CLOUDHV_KERNEL_BASE: u64 = CLOUDHV_MEM_START + 0x40_0000;
const CLOUDHV_GIC_DIST_BASE: u64 = 0x08ff_0000;
const CLOUDHV_GIC_DIST_SIZE: u64 = 0x1_0000;
const CLOUDHV_GIC_REDIST_SIZE: u64 = 0x2_0000;
const CLOUDHV_GIC_ITS_SIZE: u64 = 0x2_0000;
const CLOUDHV_UART_BASE: u64 = 0x0900_0000;
const CLOUDHV_UART_SIZE: u64 = 0x1000;
const CLOUDHV_RTC_BASE: u64 = 0x0901_0000;
const CLOUDHV_RTC_SIZE: u64 = 0x1000;
const CLOUDHV_PCI_CFG_BASE: u64 = 0x3000_0000;
const CLOUDHV_PCI_CFG_SIZE: u64 = 0x10_0000;
const CLOUDHV_PCI_IOPORT_BASE: u64 = 0x0905_0000;
const CLOUDHV_PCI_IOPORT_SIZE: u64 = 0x1_0000;
const CLOUDHV_PCI_MMIO_BASE: u64 = 0x1000_0000;
const CLOUDHV_PCI_MMIO_SIZE: u64 = 0x2000_0000;
const CLOUDHV_PCI_HIGH_BASE: u64 = 0x2_0000_0000;
const CLOUDHV_PCI_HIGH_TOP: u64 = 0x3fff_0000_0000;
const CLOUDHV_SPI_RTC: u32 = 8;
const CLOUDHV_SPI_UART: u32 = 11;
/// cloud-hypervisor asks for 48 IPA bits at most.
const CLOUDHV_IPA_BITS: u8 = 48;

fn cloud_hv(i: &Inputs<'_>) -> Result<(RealmPlan, Vec<u8>), PlanError> {
    let mem = i.memory;
    if mem == 0 || !mem.is_multiple_of(super::GRANULE) {
        return Err(PlanError(format!(
            "cloud-hypervisor: RAM of {mem} bytes is not whole granules"
        )));
    }
    if i.firmware.is_some() {
        return Err(PlanError(
            "cloud-hypervisor: firmware boot of a realm is not modelled".into(),
        ));
    }
    let bad_layout = || PlanError("cloud-hypervisor: the images do not fit in RAM".into());
    let top = CLOUDHV_MEM_START.checked_add(mem).ok_or_else(bad_layout)?;
    let params = i.caps.params(CLOUDHV_IPA_BITS, i.hash)?;
    let mut data = Vec::new();
    if let Some(k) = i.kernel {
        let image = Image::parse(k)?;
        data.push(measured(
            "kernel",
            CLOUDHV_KERNEL_BASE
                .checked_add(image.text_offset)
                .ok_or_else(bad_layout)?,
            image.bytes,
        ));
    }
    let mut initrd_range = None;
    if let Some(rd) = i.initrd {
        let len = u64::try_from(rd.len()).map_err(|_| bad_layout())?;
        // At the top of RAM, its size rounded up to the page.
        let start = align_up(len, super::GRANULE)
            .and_then(|l| top.checked_sub(l))
            .filter(|s| *s >= CLOUDHV_MEM_START)
            .ok_or_else(bad_layout)?;
        initrd_range = Some((start, len));
        data.push(measured("initrd", start, rd.to_vec()));
    }
    let dtb = cloud_hv_dtb(i.vcpus, mem, i.cmdline, initrd_range).map_err(dtb_error)?;
    data.push(measured("dtb", CLOUDHV_DT_BASE, dtb.clone()));
    Ok((
        realm(
            params,
            (CLOUDHV_MEM_START, mem),
            data,
            CLOUDHV_KERNEL_BASE,
            CLOUDHV_DT_BASE,
        ),
        dtb,
    ))
}

fn cloud_hv_dtb(
    vcpus: u32,
    mem: u64,
    cmdline: Option<&str>,
    initrd: Option<(u64, u64)>,
) -> fdt::Result<Vec<u8>> {
    const GIC: u32 = 1;
    const ITS: u32 = 2;
    const CLOCK: u32 = 3;
    let (mut f, root) = fdt::start((CLOUDHV_MEM_START, mem), vcpus, GIC, cmdline, initrd)?;
    let redist_size = u64::from(vcpus).saturating_mul(CLOUDHV_GIC_REDIST_SIZE);
    let redist_base = CLOUDHV_GIC_DIST_BASE.saturating_sub(redist_size);
    let its_base = redist_base.saturating_sub(CLOUDHV_GIC_ITS_SIZE);
    fdt::gic(
        &mut f,
        &[
            CLOUDHV_GIC_DIST_BASE,
            CLOUDHV_GIC_DIST_SIZE,
            redist_base,
            redist_size,
        ],
        Some([its_base, CLOUDHV_GIC_ITS_SIZE]),
        (GIC, ITS),
    )?;
    fdt::timer(&mut f, &[13, 14, 11], fdt::IRQ_LEVEL_HI)?;
    // cloud-hypervisor describes a PMU whether or not the realm has one.
    fdt::pmu(&mut f, 7)?;
    fdt::fixed_clock(&mut f, CLOCK)?;
    fdt::pl031(
        &mut f,
        (CLOUDHV_RTC_BASE, CLOUDHV_RTC_SIZE),
        CLOCK,
        CLOUDHV_SPI_RTC,
    )?;
    let uart = fdt::begin_at(&mut f, "pl011", CLOUDHV_UART_BASE)?;
    f.property_string("clock-names", "apb_pclk")?;
    f.property_array_u64("reg", &[CLOUDHV_UART_BASE, CLOUDHV_UART_SIZE])?;
    f.property_u32("clocks", CLOCK)?;
    f.property_array_u32(
        "interrupts",
        &[fdt::IRQ_SPI, CLOUDHV_SPI_UART, fdt::IRQ_EDGE_LO_HI],
    )?;
    f.property_string_list(
        "compatible",
        vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    f.end_node(uart)?;
    let pci = fdt::begin_at(&mut f, "pcie", CLOUDHV_PCI_CFG_BASE)?;
    f.property_array_u32(
        "ranges",
        &fdt::pci_ranges(
            (CLOUDHV_PCI_IOPORT_BASE, CLOUDHV_PCI_IOPORT_SIZE),
            (CLOUDHV_PCI_MMIO_BASE, CLOUDHV_PCI_MMIO_SIZE),
            Some((
                CLOUDHV_PCI_HIGH_BASE,
                CLOUDHV_PCI_HIGH_TOP - CLOUDHV_PCI_HIGH_BASE,
            )),
        ),
    )?;
    f.property_array_u64("reg", &[CLOUDHV_PCI_CFG_BASE, CLOUDHV_PCI_CFG_SIZE])?;
    f.property_array_u32("msi-map", &[0, ITS, 0, 0x100])?;
    fdt::ecam_tail(&mut f, 0)?;
    f.end_node(pci)?;
    f.end_node(root)?;
    f.finish()
}
