//! The TDX backend's only `unsafe`: KVM's TDX commands (`KVM_MEMORY_ENCRYPT_OP` with a
//! `struct kvm_tdx_cmd`, on the VM or a vCPU). kvm-bindings has no TDX structures, so
//! they are defined here, each checked at compile time against the kernel's layout
//! (arch/x86/include/uapi/asm/kvm.h of Linux 6.16, as ../shared/UAPI.md transcribes it).

use super::{MemRegion, TdxCaps, TdxInitVm};
use crate::vmm::cc::CommandError;
use kvm_bindings::kvm_cpuid_entry2;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, RawFd};

/// `struct kvm_tdx_cmd`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct KvmTdxCmd {
    id: u32,
    flags: u32,
    data: u64,
    hw_error: u64,
}

/// The most CPUID entries a TDX structure carries here (`KVM_MAX_CPUID_ENTRIES`; KVM
/// refuses more than 256 in `KVM_TDX_INIT_VM`).
const MAX_ENTRIES: usize = 256;

/// `struct kvm_tdx_capabilities`, its flexible `struct kvm_cpuid2` with room for
/// [`MAX_ENTRIES`] entries.
#[repr(C)]
struct KvmTdxCapabilities {
    supported_attrs: u64,
    supported_xfam: u64,
    kernel_tdvmcallinfo_1_r11: u64,
    user_tdvmcallinfo_1_r11: u64,
    kernel_tdvmcallinfo_1_r12: u64,
    user_tdvmcallinfo_1_r12: u64,
    supported_caps: u64,
    reserved: [u64; 249],
    nent: u32,
    padding: u32,
    entries: [kvm_cpuid_entry2; MAX_ENTRIES],
}

/// `struct kvm_tdx_init_vm`, with room for [`MAX_ENTRIES`] CPUID entries.
#[repr(C)]
struct KvmTdxInitVm {
    attributes: u64,
    xfam: u64,
    mrconfigid: [u64; 6],
    mrowner: [u64; 6],
    mrownerconfig: [u64; 6],
    reserved: [u64; 12],
    nent: u32,
    padding: u32,
    entries: [kvm_cpuid_entry2; MAX_ENTRIES],
}

/// `struct kvm_tdx_init_mem_region`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct KvmTdxInitMemRegion {
    source_addr: u64,
    gpa: u64,
    nr_pages: u64,
}

const _: () = {
    assert!(size_of::<KvmTdxCmd>() == 24);
    assert!(offset_of!(KvmTdxCmd, flags) == 4);
    assert!(offset_of!(KvmTdxCmd, data) == 8);
    assert!(offset_of!(KvmTdxCmd, hw_error) == 16);
    // 7 fields and reserved[249]: 2048 bytes, then struct kvm_cpuid2 {nent, padding}.
    assert!(offset_of!(KvmTdxCapabilities, supported_caps) == 48);
    assert!(offset_of!(KvmTdxCapabilities, nent) == 2048);
    assert!(offset_of!(KvmTdxCapabilities, entries) == 2056);
    assert!(size_of::<kvm_cpuid_entry2>() == 40);
    assert!(offset_of!(KvmTdxInitVm, mrconfigid) == 16);
    assert!(offset_of!(KvmTdxInitVm, mrowner) == 64);
    assert!(offset_of!(KvmTdxInitVm, mrownerconfig) == 112);
    assert!(offset_of!(KvmTdxInitVm, reserved) == 160);
    assert!(offset_of!(KvmTdxInitVm, nent) == 256);
    assert!(offset_of!(KvmTdxInitVm, entries) == 264);
    assert!(size_of::<KvmTdxInitMemRegion>() == 24);
    assert!(offset_of!(KvmTdxInitMemRegion, nr_pages) == 16);
};

/// `enum kvm_tdx_cmd_id`.
mod id {
    pub const CAPABILITIES: u32 = 0;
    pub const INIT_VM: u32 = 1;
    pub const INIT_VCPU: u32 = 2;
    pub const INIT_MEM_REGION: u32 = 3;
    pub const FINALIZE_VM: u32 = 4;
}

/// `KVM_MEMORY_ENCRYPT_OP`, `_IOWR(KVMIO, 0xba, unsigned long)`.
const KVM_MEMORY_ENCRYPT_OP: libc::c_ulong = 0xc008_aeba;

/// Issues TDX command `id` on `fd` (the VM's or a vCPU's).
///
/// # Safety
///
/// `fd` must be a KVM VM or vCPU descriptor; `data` must be zero or the address of the
/// structure command `id` takes, valid for reads and writes during the call, and every
/// host address in it must be memory the kernel may read, holding no Rust object in use.
unsafe fn command(
    fd: RawFd,
    name: &'static str,
    id: u32,
    flags: u32,
    data: u64,
) -> Result<(), CommandError> {
    let mut cmd = KvmTdxCmd {
        id,
        flags,
        data,
        hw_error: 0,
    };
    // SAFETY: `cmd` is a valid kvm_tdx_cmd; what `data` points to is the caller's
    // guarantee.
    let r = unsafe { libc::ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &raw mut cmd) };
    if r == 0 {
        Ok(())
    } else {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        Err(CommandError::module(name, errno, cmd.hw_error))
    }
}

fn addr<T>(p: *mut T) -> u64 {
    u64::try_from(p.addr()).unwrap_or(0)
}

/// `KVM_TDX_CAPABILITIES` (vm).
pub(super) fn capabilities(vm: &impl AsRawFd) -> Result<TdxCaps, CommandError> {
    let mut caps = Box::new(KvmTdxCapabilities {
        supported_attrs: 0,
        supported_xfam: 0,
        kernel_tdvmcallinfo_1_r11: 0,
        user_tdvmcallinfo_1_r11: 0,
        kernel_tdvmcallinfo_1_r12: 0,
        user_tdvmcallinfo_1_r12: 0,
        supported_caps: 0,
        reserved: [0; 249],
        nent: u32::try_from(MAX_ENTRIES).unwrap_or(0),
        padding: 0,
        entries: [kvm_cpuid_entry2::default(); MAX_ENTRIES],
    });
    // SAFETY: KVM writes at most `nent` entries after the header, all inside `caps`.
    unsafe {
        command(
            vm.as_raw_fd(),
            "KVM_TDX_CAPABILITIES",
            id::CAPABILITIES,
            0,
            addr(&raw mut *caps),
        )
    }?;
    let n = usize::try_from(caps.nent).unwrap_or(0).min(MAX_ENTRIES);
    Ok(TdxCaps {
        supported_attrs: caps.supported_attrs,
        supported_xfam: caps.supported_xfam,
        kernel_tdvmcallinfo_1_r11: caps.kernel_tdvmcallinfo_1_r11,
        user_tdvmcallinfo_1_r11: caps.user_tdvmcallinfo_1_r11,
        supported_caps: caps.supported_caps,
        cpuid: caps.entries.get(..n).unwrap_or_default().to_vec(),
    })
}

fn words(b: &[u8; 48]) -> [u64; 6] {
    let mut w = [0u64; 6];
    for (d, c) in w.iter_mut().zip(b.chunks_exact(8)) {
        let mut x = [0u8; 8];
        x.copy_from_slice(c);
        *d = u64::from_le_bytes(x);
    }
    w
}

/// `KVM_TDX_INIT_VM` (vm).
pub(super) fn init_vm(vm: &impl AsRawFd, init: &TdxInitVm) -> Result<(), CommandError> {
    const C: &str = "KVM_TDX_INIT_VM";
    if init.cpuid.len() > MAX_ENTRIES {
        return Err(CommandError::kernel(C, libc::E2BIG));
    }
    let mut entries = [kvm_cpuid_entry2::default(); MAX_ENTRIES];
    for (d, s) in entries.iter_mut().zip(&init.cpuid) {
        *d = *s;
    }
    let mut data = Box::new(KvmTdxInitVm {
        attributes: init.attributes,
        xfam: init.xfam,
        mrconfigid: words(&init.mrconfigid),
        mrowner: words(&init.mrowner),
        mrownerconfig: words(&init.mrownerconfig),
        reserved: [0; 12],
        nent: u32::try_from(init.cpuid.len()).unwrap_or(0),
        padding: 0,
        entries,
    });
    // SAFETY: KVM reads the header and `nent` entries, all inside `data`.
    unsafe { command(vm.as_raw_fd(), C, id::INIT_VM, 0, addr(&raw mut *data)) }
}

/// `KVM_TDX_INIT_VCPU` (vcpu): RCX at the TD's first entry is `rcx`.
pub(super) fn init_vcpu(vcpu: &impl AsRawFd, rcx: u64) -> Result<(), CommandError> {
    // SAFETY: INIT_VCPU takes a value in `data`, not an address.
    unsafe { command(vcpu.as_raw_fd(), "KVM_TDX_INIT_VCPU", id::INIT_VCPU, 0, rcx) }
}

/// `KVM_TDX_INIT_MEM_REGION` (vcpu); `region` gets KVM's write-back.
///
/// # Safety
///
/// `[region.source_addr, + region.nr_pages * 4 KiB)` must be memory of this process that
/// the kernel may read (the VMM's mapping of guest memory).
pub(super) unsafe fn init_mem_region(
    vcpu: &impl AsRawFd,
    region: &mut MemRegion,
    measure: bool,
) -> Result<(), CommandError> {
    let mut r = KvmTdxInitMemRegion {
        source_addr: region.source_addr,
        gpa: region.gpa,
        nr_pages: region.nr_pages,
    };
    let flags = if measure {
        super::MEASURE_MEMORY_REGION
    } else {
        0
    };
    // SAFETY: `r` lives for the call; the source range is the caller's guarantee.
    let result = unsafe {
        command(
            vcpu.as_raw_fd(),
            "KVM_TDX_INIT_MEM_REGION",
            id::INIT_MEM_REGION,
            flags,
            addr(&raw mut r),
        )
    };
    region.source_addr = r.source_addr;
    region.gpa = r.gpa;
    region.nr_pages = r.nr_pages;
    result
}

/// `KVM_TDX_FINALIZE_VM` (vm).
pub(super) fn finalize_vm(vm: &impl AsRawFd) -> Result<(), CommandError> {
    // SAFETY: FINALIZE_VM takes no data.
    unsafe { command(vm.as_raw_fd(), "KVM_TDX_FINALIZE_VM", id::FINALIZE_VM, 0, 0) }
}

/// A vsock stream connected to `cid:port`, with read and write timeouts.
pub(super) fn vsock_connect(
    cid: u32,
    port: u32,
    timeout: std::time::Duration,
) -> std::io::Result<std::fs::File> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: socket() has no memory effects; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: setsockopt reads `tv`, alive for the call, of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const tv).cast(),
                libc::socklen_t::try_from(size_of::<libc::timeval>()).unwrap_or(0),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: an all-zero sockaddr_vm is valid; the fields are set below.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::sa_family_t::try_from(libc::AF_VSOCK).unwrap_or(0);
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: connect reads `addr`, alive for the call, of the size given.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_vm>()).unwrap_or(0),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_encrypt_op_ioctl_number_is_the_kernels() {
        // _IOWR(KVMIO = 0xAE, 0xba, sizeof(unsigned long) = 8): dir 3 << 30.
        let n: libc::c_ulong = (3 << 30) | (8 << 16) | (0xae << 8) | 0xba;
        assert_eq!(super::KVM_MEMORY_ENCRYPT_OP, n);
    }
}
