//! Arm CCA realms: the plan of a realm's creation (its parameters, the RIPAS of its RAM,
//! the data granules the host populates, its first REC), and the Realm Initial
//! Measurement as a fold over that plan, as the RMM computes it.
//!
//! The RMM's rules (Arm DEN0137 "Realm Management Monitor specification" 1.0-rel0):
//! - RMI_REALM_CREATE (B4.3.9.4): RIM = H(RmiRealmParams, 4096 bytes, with only the
//!   measured fields kept: flags, s2sz, sve_vl, num_bps, num_wps, pmu_num_ctrs,
//!   hash_algo; the RPV, VMID and RTT fields are zero in the measured copy).
//! - RMI_RTT_INIT_RIPAS (B4.3.15.4): for each RTT entry the command covers, RIM =
//!   H(RmmMeasurementDescriptorRipas{type 2, len 0x100, rim, base, top}); one entry is the
//!   largest block the stage-2 tables can map at that address (A2.2.3, with KVM's
//!   concatenated start-level tables).
//! - RMI_DATA_CREATE (B4.3.1.4): per 4 KiB granule, RIM =
//!   H(RmmMeasurementDescriptorData{type 0, len 0x100, rim, ipa, flags, content}), with
//!   content = H(granule) when flags has RMI_MEASURE_CONTENT, else zero.
//! - RMI_REC_CREATE (B4.3.12.4), runnable RECs only: RIM =
//!   H(RmmMeasurementDescriptorRec{type 1, len 0x100, rim, content = H(RmiRecParams with
//!   flags, pc and gprs[0..8] only, 4096 bytes)}).
//!
//! Every measurement is kept in a 64-byte field (SHA-256 values zero-padded), and
//! descriptors embed the whole field. The field layouts are also those of
//! veraison/cca-realm-measurements (rmm/src/lib.rs), whose tables check this module.
//!
//! Which commands the host issues, in which order, depends on the host interface
//! ([`Interface`]): KVM up to the v11 realm series drove each RMM 1.0 command from the VMM
//! (what the reference tools and their tables assume); the v14 series ("arm64: Support
//! for Arm CCA in KVM", 2026-05-13, RMM 2.0-bet1) issues them itself, in another order,
//! and does not measure the RIPAS of RAM.

pub mod fdt;
pub mod layout;

use serde::Serialize;
use sha2::Digest;

/// The granule size.
pub const GRANULE: u64 = 0x1000;

/// The realm's measurement hash (RmiHashAlgorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hash {
    /// SHA-256 (RMI_HASH_SHA_256 = 0).
    Sha256,
    /// SHA-512 (RMI_HASH_SHA_512 = 1).
    Sha512,
}

impl Hash {
    /// Its name (`sha256`, `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha512 => "sha512",
        }
    }

    /// The RMI encoding.
    pub fn rmi(self) -> u8 {
        match self {
            Hash::Sha256 => 0,
            Hash::Sha512 => 1,
        }
    }

    /// The digest length.
    pub fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }

    /// Always false (a digest is never empty).
    pub fn is_empty(self) -> bool {
        false
    }

    /// `data` hashed, in a 64-byte measurement field.
    pub fn measure(self, data: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        match self {
            Hash::Sha256 => {
                if let Some(d) = out.get_mut(..32) {
                    d.copy_from_slice(&sha2::Sha256::digest(data));
                }
            }
            Hash::Sha512 => out.copy_from_slice(&sha2::Sha512::digest(data)),
        }
        out
    }
}

/// The realm parameters RMI_REALM_CREATE measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealmParams {
    /// Large physical addresses (RMI_REALM_F_LPA2).
    pub lpa2: bool,
    /// The SVE vector length in bits (0: no SVE).
    pub sve_vl: u16,
    /// The PMU (RMI_REALM_F_PMU).
    pub pmu: bool,
    /// IPA width (s2sz).
    pub ipa_bits: u8,
    /// Breakpoints (2-64; the RMM stores the count minus one).
    pub num_bps: u8,
    /// Watchpoints (2-64; stored minus one).
    pub num_wps: u8,
    /// PMU event counters (0-31).
    pub pmu_num_ctrs: u8,
    /// The measurement hash.
    pub hash: Hash,
}

impl RealmParams {
    /// The measured RmiRealmParams (4096 bytes): flags at 0, s2sz at 0x8, sve_vl (the
    /// vector length in quadwords minus one) at 0x10, num_bps - 1 at 0x18, num_wps - 1
    /// at 0x20, pmu_num_ctrs at 0x28, hash_algo at 0x30.
    pub fn measured_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        let mut flags = 0u64;
        if self.lpa2 {
            flags |= 1;
        }
        if self.sve_vl != 0 {
            flags |= 2;
        }
        if self.pmu {
            flags |= 4;
        }
        let sve_vq = if self.sve_vl == 0 {
            0
        } else {
            u8::try_from((self.sve_vl / 128).saturating_sub(1)).unwrap_or(u8::MAX)
        };
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| {
            if let Some(d) = b.get_mut(at..at.saturating_add(v.len())) {
                d.copy_from_slice(v);
            }
        };
        put(&mut b, 0, &flags.to_le_bytes());
        put(&mut b, 0x8, &[self.ipa_bits]);
        put(&mut b, 0x10, &[sve_vq]);
        put(&mut b, 0x18, &[self.num_bps.saturating_sub(1)]);
        put(&mut b, 0x20, &[self.num_wps.saturating_sub(1)]);
        put(&mut b, 0x28, &[self.pmu_num_ctrs]);
        put(&mut b, 0x30, &[self.hash.rmi()]);
        b
    }
}

/// A range of guest memory the host populates: measured (its content hashed into the
/// RIM) or not (only its address and size are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// What it is (`kernel`, `dtb`, ...).
    pub name: String,
    /// Its first IPA (need not be granule-aligned: the granule is zero-filled before).
    pub ipa: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Whether the content is measured (RMI_MEASURE_CONTENT).
    pub measured: bool,
}

impl Data {
    /// The granules it occupies: the first one's IPA, and their content (zero before
    /// `ipa` and after the bytes), which the host populates and the RMM measures.
    pub fn granules(&self) -> (u64, Vec<u8>) {
        let start = self.ipa & !(GRANULE - 1);
        let lead = usize::try_from(self.ipa % GRANULE).unwrap_or(0);
        let mut content = vec![0u8; lead];
        content.extend_from_slice(&self.bytes);
        let padded = content.len().div_ceil(4096).saturating_mul(4096);
        content.resize(padded, 0);
        (start, content)
    }
}

/// The first REC's registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rec {
    /// Its entry point.
    pub pc: u64,
    /// x0-x7.
    pub gprs: [u64; 8],
}

/// The host interface that creates the realm, which decides the order of its
/// measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interface {
    /// The VMM drives RMM 1.0's commands (KVM's realm series up to v11, kvmtool-cca
    /// `--realm`, QEMU's and cloud-hypervisor's CCA branches): REALM_CREATE, INIT_RIPAS
    /// over RAM, DATA_CREATE in ascending IPA, the first REC.
    Rmm1,
    /// KVM's v14 interface (`KVM_ARM_RMI_POPULATE`, RMM 2.0-bet1): REALM_CREATE on the
    /// first populate, RTT_DATA_MAP_INIT per granule in populate order, at the first
    /// KVM_RUN the RECs (vCPU 0 runnable, patch 19/44) and then RTT_INIT_RIPAS over every
    /// guest_memfd memslot (patch 27/44), which RMM 2.0-bet1 does not measure (Suzuki K
    /// Poulose in the v14 thread, 2026-05-19: "It is not (at least for now)").
    KvmRmiV14,
}

/// A realm's creation, in the order the VMM performs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmPlan {
    /// The host interface, which orders the measurement.
    pub interface: Interface,
    /// RMI_REALM_CREATE's parameters.
    pub params: RealmParams,
    /// RAM, as (base, size): RMI_RTT_INIT_RIPAS over each.
    pub ram: Vec<(u64, u64)>,
    /// The populated data, measured in ascending IPA order.
    pub data: Vec<Data>,
    /// The first REC (None: no runnable REC, nothing measured).
    pub rec: Option<Rec>,
}

/// One RMI step of the measurement, with the RIM after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The RMI command.
    pub command: &'static str,
    /// What it measured.
    pub what: String,
    /// The RIM after it (the hash's length).
    pub rim: String,
}

/// Why a realm plan cannot be measured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("realm plan: {0}")]
pub struct PlanError(pub String);

/// The stage-2 block sizes an IPA width allows, as a bit mask (4 KiB granules, KVM's
/// concatenated tables at the start level when it would hold 16 entries or fewer).
pub fn block_sizes(ipa_bits: u8) -> u64 {
    const PAGE_BITS: u32 = 12;
    const PER_LEVEL: u32 = PAGE_BITS - 3;
    let table_bits = u32::from(ipa_bits).saturating_sub(PAGE_BITS);
    let mut levels = table_bits.div_ceil(PER_LEVEL);
    if table_bits.saturating_sub(PER_LEVEL.saturating_mul(levels.saturating_sub(1))) <= 4 {
        levels = levels.saturating_sub(1);
    }
    let levels = levels.min(4);
    let start = 4u32.saturating_sub(levels);
    let mut sizes = 0u64;
    for l in start..4 {
        let shift = PER_LEVEL.saturating_mul(3u32.saturating_sub(l));
        sizes |= GRANULE.checked_shl(shift).unwrap_or(0);
    }
    sizes
}

/// The largest block of `sizes` that starts at `start` (aligned to it) and fits below
/// `top`.
fn block_at(start: u64, top: u64, sizes: u64) -> Option<u64> {
    let mut sizes = sizes;
    if start != 0 {
        let align = 1u64.checked_shl(start.trailing_zeros().saturating_add(1))?;
        sizes &= align.wrapping_sub(1);
    }
    while sizes != 0 {
        let block = 1u64 << 63u32.saturating_sub(sizes.leading_zeros());
        if top.saturating_sub(start) >= block {
            return Some(block);
        }
        sizes &= !block;
    }
    None
}

fn put(d: &mut [u8], at: usize, v: &[u8]) {
    if let Some(t) = d.get_mut(at..at.saturating_add(v.len())) {
        t.copy_from_slice(v);
    }
}

/// A 256-byte measurement descriptor with its type, length and the current RIM.
fn descriptor(kind: u8, rim: &[u8; 64]) -> [u8; 0x100] {
    let mut d = [0u8; 0x100];
    d[0] = kind;
    put(&mut d, 8, &0x100u64.to_le_bytes());
    put(&mut d, 16, rim);
    d
}

impl RealmPlan {
    /// The RIM, and every step that made it.
    pub fn measure(&self) -> Result<([u8; 64], Vec<Step>), PlanError> {
        let h = self.params.hash;
        let mut steps = Vec::new();
        let mut rim = h.measure(&self.params.measured_bytes());
        steps.push(Step {
            command: "RMI_REALM_CREATE",
            what: format!(
                "ipa_bits {}, bps {}, wps {}, pmu {} ({} counters), sve_vl {}, lpa2 {}, {}",
                self.params.ipa_bits,
                self.params.num_bps,
                self.params.num_wps,
                self.params.pmu,
                self.params.pmu_num_ctrs,
                self.params.sve_vl,
                self.params.lpa2,
                h.name()
            ),
            rim: self.show(&rim),
        });
        let v14 = self.interface == Interface::KvmRmiV14;
        if !v14 {
            self.measure_ripas(&mut rim, &mut steps)?;
        }
        for d in self.data_in_order() {
            self.measure_data(d, &mut rim, &mut steps);
        }
        self.measure_rec(&mut rim, &mut steps);
        if v14 {
            for (base, size) in &self.ram {
                steps.push(Step {
                    command: "RMI_RTT_INIT_RIPAS",
                    what: format!(
                        "RAM {base:#x}-{:#x} (not measured by RMM 2.0-bet1)",
                        base.saturating_add(*size)
                    ),
                    rim: self.show(&rim),
                });
            }
        }
        Ok((rim, steps))
    }

    /// The populated data in the order the host populates it: ascending IPA.
    pub fn data_in_order(&self) -> Vec<&Data> {
        let mut data: Vec<&Data> = self.data.iter().collect();
        data.sort_by_key(|d| d.ipa);
        data
    }

    fn show(&self, rim: &[u8; 64]) -> String {
        hex::encode(rim.get(..self.params.hash.len()).unwrap_or(rim))
    }

    /// RMI_RTT_INIT_RIPAS over RAM, one descriptor per stage-2 block (RMM 1.0).
    fn measure_ripas(&self, rim: &mut [u8; 64], steps: &mut Vec<Step>) -> Result<(), PlanError> {
        let h = self.params.hash;
        let sizes = block_sizes(self.params.ipa_bits);
        let mut ram = self.ram.clone();
        ram.sort_unstable();
        for (base, size) in ram {
            let top = base
                .checked_add(size)
                .filter(|t| base % GRANULE == 0 && t % GRANULE == 0 && *t > base)
                .ok_or_else(|| PlanError(format!("RAM {base:#x}+{size:#x} is not granules")))?;
            let mut cur = base;
            while cur < top {
                let block = block_at(cur, top, sizes)
                    .ok_or_else(|| PlanError(format!("no block maps {cur:#x}")))?;
                let next = cur.saturating_add(block);
                let mut d = descriptor(2, rim);
                put(&mut d, 80, &cur.to_le_bytes());
                put(&mut d, 88, &next.to_le_bytes());
                *rim = h.measure(&d);
                cur = next;
            }
            steps.push(Step {
                command: "RMI_RTT_INIT_RIPAS",
                what: format!("RAM {base:#x}-{top:#x}"),
                rim: self.show(rim),
            });
        }
        Ok(())
    }

    /// RMI_DATA_CREATE (RMM 1.0) or RMI_RTT_DATA_MAP_INIT (RMM 2.0): one descriptor per
    /// granule, the same in both.
    fn measure_data(&self, d: &Data, rim: &mut [u8; 64], steps: &mut Vec<Step>) {
        let h = self.params.hash;
        let command = if self.interface == Interface::KvmRmiV14 {
            "RMI_RTT_DATA_MAP_INIT"
        } else {
            "RMI_DATA_CREATE"
        };
        let (start, content) = d.granules();
        let padded = content.len();
        let mut ipa = start;
        for granule in content.chunks(4096) {
            let mut desc = descriptor(0, rim);
            put(&mut desc, 80, &ipa.to_le_bytes());
            put(&mut desc, 88, &u64::from(d.measured).to_le_bytes());
            if d.measured {
                put(&mut desc, 96, &h.measure(granule));
            }
            *rim = h.measure(&desc);
            ipa = ipa.saturating_add(GRANULE);
        }
        steps.push(Step {
            command,
            what: format!(
                "{} {:#x}-{ipa:#x} ({} granules{})",
                d.name,
                start,
                padded / 4096,
                if d.measured { "" } else { ", unmeasured" }
            ),
            rim: self.show(rim),
        });
    }

    /// RMI_REC_CREATE of the first (runnable) REC.
    fn measure_rec(&self, rim: &mut [u8; 64], steps: &mut Vec<Step>) {
        let h = self.params.hash;
        if let Some(rec) = &self.rec {
            let mut p = vec![0u8; 0x1000];
            put(&mut p, 0, &1u64.to_le_bytes());
            put(&mut p, 0x200, &rec.pc.to_le_bytes());
            for (i, g) in rec.gprs.iter().enumerate() {
                put(
                    &mut p,
                    0x300usize.saturating_add(i.saturating_mul(8)),
                    &g.to_le_bytes(),
                );
            }
            let mut d = descriptor(1, rim);
            put(&mut d, 80, &h.measure(&p));
            *rim = h.measure(&d);
            steps.push(Step {
                command: "RMI_REC_CREATE",
                what: format!("pc {:#x}, x0 {:#x}", rec.pc, rec.gprs[0]),
                rim: self.show(rim),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(hash: Hash) -> RealmParams {
        RealmParams {
            lpa2: false,
            sve_vl: 0,
            pmu: false,
            ipa_bits: 48,
            num_bps: 2,
            num_wps: 2,
            pmu_num_ctrs: 0,
            hash,
        }
    }

    /// veraison/cca-realm-measurements' own test values (src/realm_config.rs test_rim):
    /// a realm of 48 IPA bits, 2 breakpoints and watchpoints, no SVE, no PMU counters,
    /// nothing else.
    #[test]
    fn realm_create_matches_the_reference_tool() {
        let empty = |hash| RealmPlan {
            interface: Interface::Rmm1,
            params: params(hash),
            ram: Vec::new(),
            data: Vec::new(),
            rec: None,
        };
        let (rim, _) = empty(Hash::Sha256).measure().unwrap();
        assert_eq!(
            hex::encode(&rim[..32]),
            "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973"
        );
        assert!(rim[32..].iter().all(|b| *b == 0));
        let (rim, _) = empty(Hash::Sha512).measure().unwrap();
        assert_eq!(
            hex::encode(rim),
            "799e434048fb57eb9d4f0e2a2b98158720377252deab2bdfcd69b5a8f82237f434bd6bb1c75bf160a2d49382f733b3439a3ff769e4ea5dd9a6f72239d44bbbab"
        );
    }

    /// The same tool's block-size tests (src/realm.rs test_block_sizes).
    #[test]
    fn block_sizes_match_the_reference_tool() {
        for (bits, want) in [
            (52, 0x80_4020_1000u64),
            (48, 0x80_4020_1000),
            (44, 0x80_4020_1000),
            (43, 0x00_4020_1000),
            (39, 0x00_4020_1000),
            (35, 0x00_4020_1000),
            (34, 0x00_0020_1000),
            (30, 0x00_0020_1000),
            (26, 0x00_0020_1000),
            (25, 0x00_0000_1000),
            (20, 0x00_0000_1000),
        ] {
            assert_eq!(block_sizes(bits), want, "{bits}");
        }
        assert_eq!(block_at(0, 0x1000, 0x4020_1000), Some(0x1000));
        assert_eq!(block_at(0, 0x4000_0000, 0x4020_1000), Some(0x4000_0000));
        assert_eq!(block_at(0x40_0000, 0x80_0000, 0x4020_1000), Some(0x20_0000));
        assert_eq!(block_at(0x40_0000, 0x50_0000, 0x4020_1000), Some(0x1000));
    }
}
