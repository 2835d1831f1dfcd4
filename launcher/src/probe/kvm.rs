//! The device side of probing: KVM capability queries and the SNP platform status.
//!
//! [`HostDevices`] is the seam between the probe's decision logic and the real devices.
//! [`SystemDevices`] answers with real ioctls (through `kvm-ioctls` and the `sev` crate,
//! so this module holds no `unsafe`); tests use a fixed set of answers instead.

use super::facts::{SnpStatus, Tcb};
use serde::Serialize;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// KVM capability numbers (`include/uapi/linux/kvm.h`), named here so that the probe
/// decodes them the same way on every architecture.
pub mod cap {
    /// `KVM_CAP_NR_VCPUS`: recommended maximum vCPUs.
    pub const NR_VCPUS: u32 = 9;
    /// `KVM_CAP_MAX_VCPUS`.
    pub const MAX_VCPUS: u32 = 66;
    /// `KVM_CAP_SPLIT_IRQCHIP` (TDX needs it).
    pub const SPLIT_IRQCHIP: u32 = 121;
    /// `KVM_CAP_EXIT_HYPERCALL`: bitmap of hypercalls that can exit to userspace.
    pub const EXIT_HYPERCALL: u32 = 201;
    /// `KVM_CAP_USER_MEMORY2`.
    pub const USER_MEMORY2: u32 = 231;
    /// `KVM_CAP_MEMORY_ATTRIBUTES`: bitmap of supported memory attributes.
    pub const MEMORY_ATTRIBUTES: u32 = 233;
    /// `KVM_CAP_GUEST_MEMFD`.
    pub const GUEST_MEMFD: u32 = 234;
    /// `KVM_CAP_VM_TYPES`: bitmap of supported `KVM_CREATE_VM` types (x86).
    pub const VM_TYPES: u32 = 235;
}

/// `KVM_MEMORY_ATTRIBUTE_PRIVATE`.
pub const MEMORY_ATTRIBUTE_PRIVATE: u64 = 1 << 3;
/// `KVM_HC_MAP_GPA_RANGE`: the hypercall through which SNP page-state changes and TDX
/// MapGPA reach userspace.
pub const HC_MAP_GPA_RANGE: u32 = 12;
/// The only KVM API version there has ever been.
pub const KVM_API_VERSION: i32 = 12;

#[cfg(target_arch = "x86_64")]
const _: () = {
    assert!(cap::VM_TYPES == kvm_bindings::KVM_CAP_VM_TYPES);
    assert!(cap::GUEST_MEMFD == kvm_bindings::KVM_CAP_GUEST_MEMFD);
    assert!(cap::MEMORY_ATTRIBUTES == kvm_bindings::KVM_CAP_MEMORY_ATTRIBUTES);
    assert!(cap::EXIT_HYPERCALL == kvm_bindings::KVM_CAP_EXIT_HYPERCALL);
    assert!(cap::SPLIT_IRQCHIP == kvm_bindings::KVM_CAP_SPLIT_IRQCHIP);
    assert!(cap::USER_MEMORY2 == kvm_bindings::KVM_CAP_USER_MEMORY2);
    assert!(cap::MAX_VCPUS == kvm_bindings::KVM_CAP_MAX_VCPUS);
    assert!(cap::NR_VCPUS == kvm_bindings::KVM_CAP_NR_VCPUS);
    assert!(MEMORY_ATTRIBUTE_PRIVATE == kvm_bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE as u64);
    assert!(KVM_API_VERSION.cast_unsigned() == kvm_bindings::KVM_API_VERSION);
};

/// The answers of an open KVM device.
pub trait KvmQuery {
    /// `KVM_GET_API_VERSION`.
    fn api_version(&self) -> i32;
    /// `KVM_CHECK_EXTENSION` on the system fd: the raw return value (negative on error).
    fn check_extension(&self, cap: u32) -> i32;
}

/// The devices a probe queries.
pub trait HostDevices {
    /// Opens the KVM device at `path`.
    fn open_kvm(&self, path: &Path) -> io::Result<Box<dyn KvmQuery>>;
    /// Reads the SNP platform status (SNP_PLATFORM_STATUS) from the SEV device at `path`.
    fn snp_platform_status(&self, path: &Path) -> Result<SnpStatus, String>;
}

/// The real devices of this host.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemDevices;

struct SystemKvm(kvm_ioctls::Kvm);

impl KvmQuery for SystemKvm {
    fn api_version(&self) -> i32 {
        self.0.get_api_version()
    }

    fn check_extension(&self, cap: u32) -> i32 {
        self.0.check_extension_raw(cap.into())
    }
}

impl HostDevices for SystemDevices {
    fn open_kvm(&self, path: &Path) -> io::Result<Box<dyn KvmQuery>> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        let kvm = kvm_ioctls::Kvm::new_with_path(&c_path).map_err(io::Error::from)?;
        Ok(Box::new(SystemKvm(kvm)))
    }

    fn snp_platform_status(&self, path: &Path) -> Result<SnpStatus, String> {
        // The sev crate opens the device by its fixed name only.
        if path != Path::new("/dev/sev") {
            return Err(format!(
                "the SNP platform status is read from /dev/sev only, not {}",
                path.display()
            ));
        }
        let mut fw = sev::firmware::host::Firmware::open()
            .map_err(|e| format!("cannot open /dev/sev: {e}"))?;
        let st = fw
            .snp_platform_status()
            .map_err(|e| format!("SNP_PLATFORM_STATUS failed: {e}"))?;
        Ok(SnpStatus {
            api_major: st.version.0,
            api_minor: st.version.1,
            build_id: st.build_id,
            state: st.state,
            rmp_initialized: st.is_rmp_init.is_rmp_init(),
            guest_count: st.guest_count,
            platform_tcb: tcb(&st.platform_tcb_version),
            reported_tcb: tcb(&st.reported_tcb_version),
        })
    }
}

fn tcb(v: &sev::firmware::host::TcbVersion) -> Tcb {
    Tcb {
        fmc: v.fmc,
        bootloader: v.bootloader,
        tee: v.tee,
        snp: v.snp,
        microcode: v.microcode,
    }
}

/// The `KVM_CAP_VM_TYPES` bitmap, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmTypes(pub u32);

impl VmTypes {
    /// `KVM_X86_DEFAULT_VM`.
    pub const DEFAULT: u32 = 0;
    /// `KVM_X86_SW_PROTECTED_VM`.
    pub const SW_PROTECTED: u32 = 1;
    /// `KVM_X86_SEV_VM`.
    pub const SEV: u32 = 2;
    /// `KVM_X86_SEV_ES_VM`.
    pub const SEV_ES: u32 = 3;
    /// `KVM_X86_SNP_VM`.
    pub const SNP: u32 = 4;
    /// `KVM_X86_TDX_VM`.
    pub const TDX: u32 = 5;

    const NAMES: [(u32, &'static str); 6] = [
        (Self::DEFAULT, "default"),
        (Self::SW_PROTECTED, "sw-protected"),
        (Self::SEV, "sev"),
        (Self::SEV_ES, "sev-es"),
        (Self::SNP, "snp"),
        (Self::TDX, "tdx"),
    ];

    /// Whether VM type `ty` may be created.
    pub fn has(self, ty: u32) -> bool {
        ty < 32 && self.0 & (1 << ty) != 0
    }

    /// The names of the supported types; unknown bits as `type-N`.
    pub fn names(self) -> Vec<String> {
        (0..32)
            .filter(|&bit| self.has(bit))
            .map(|bit| match Self::NAMES.iter().find(|(b, _)| *b == bit) {
                Some((_, name)) => (*name).to_owned(),
                None => format!("type-{bit}"),
            })
            .collect()
    }
}

#[cfg(target_arch = "x86_64")]
const _: () = {
    assert!(VmTypes::SNP == kvm_bindings::KVM_X86_SNP_VM);
    assert!(VmTypes::TDX == kvm_bindings::KVM_X86_TDX_VM);
    assert!(VmTypes::SEV_ES == kvm_bindings::KVM_X86_SEV_ES_VM);
    assert!(VmTypes::SEV == kvm_bindings::KVM_X86_SEV_VM);
};

impl Serialize for VmTypes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_types_decode() {
        assert_eq!(VmTypes(0b1).names(), ["default"]);
        assert_eq!(
            VmTypes(0b11101).names(),
            ["default", "sev", "sev-es", "snp"]
        );
        assert_eq!(VmTypes(0b100001).names(), ["default", "tdx"]);
        assert_eq!(VmTypes(1 << 9 | 1).names(), ["default", "type-9"]);
        assert!(!VmTypes(u32::MAX).has(40));
    }

    /// The real device of this host, when it has one: the API version is the only one
    /// that exists, and a default VM is always possible.
    #[test]
    fn system_kvm_answers_when_present() {
        let path = Path::new("/dev/kvm");
        if !path.exists() {
            eprintln!("skipped: no /dev/kvm on this host");
            return;
        }
        let kvm = SystemDevices.open_kvm(path).unwrap();
        assert_eq!(kvm.api_version(), KVM_API_VERSION);
        let types = kvm.check_extension(cap::VM_TYPES);
        assert!(types == 0 || VmTypes(types.cast_unsigned()).has(VmTypes::DEFAULT));
    }
}
