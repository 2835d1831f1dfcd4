//! The SEV backend's only `unsafe`: KVM's SEV commands (`KVM_MEMORY_ENCRYPT_OP` with a
//! `struct kvm_sev_cmd` pointing at each command's structure) and `KVM_GET_DEVICE_ATTR`
//! on /dev/kvm. Every structure is kvm-bindings', checked here at compile time against
//! the kernel's layout (include/uapi/linux/kvm.h, arch/x86/include/uapi/asm/kvm.h, as
//! ../shared/UAPI.md transcribes them): if a binding ever differed, this would not build.

use super::{CommandError, SnpFinish, SnpUpdate};
use kvm_bindings::{
    kvm_create_guest_memfd, kvm_device_attr, kvm_enc_region, kvm_memory_attributes, kvm_sev_cmd,
    kvm_sev_init, kvm_sev_launch_measure, kvm_sev_launch_start, kvm_sev_launch_update_data,
    kvm_sev_snp_launch_finish, kvm_sev_snp_launch_start, kvm_sev_snp_launch_update,
    kvm_userspace_memory_region2,
};
use kvm_ioctls::{Kvm, VmFd};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, RawFd};

/// `size_of::<T>() == n` and each `offset_of!(T, field) == offset`, at compile time.
macro_rules! layout {
    ($t:ty, $size:expr, $($field:ident @ $off:expr),* $(,)?) => {
        const _: () = {
            assert!(size_of::<$t>() == $size);
            $(assert!(offset_of!($t, $field) == $off);)*
        };
    };
}

layout!(kvm_sev_cmd, 24, id @ 0, pad0 @ 4, data @ 8, error @ 16, sev_fd @ 20);
layout!(kvm_sev_init, 48, vmsa_features @ 0, flags @ 8, ghcb_version @ 12, pad1 @ 14, pad2 @ 16);
layout!(kvm_sev_snp_launch_start, 64, policy @ 0, gosvw @ 8, flags @ 24, pad0 @ 26, pad1 @ 32);
layout!(
    kvm_sev_snp_launch_update, 64,
    gfn_start @ 0, uaddr @ 8, len @ 16, type_ @ 24, pad0 @ 25, flags @ 26, pad1 @ 28, pad2 @ 32,
);
layout!(
    kvm_sev_snp_launch_finish, 88,
    id_block_uaddr @ 0, id_auth_uaddr @ 8, id_block_en @ 16, auth_key_en @ 17,
    vcek_disabled @ 18, host_data @ 19, pad0 @ 51, flags @ 54, pad1 @ 56,
);
layout!(
    kvm_sev_launch_start, 40,
    handle @ 0, policy @ 4, dh_uaddr @ 8, dh_len @ 16, session_uaddr @ 24, session_len @ 32,
);
layout!(kvm_sev_launch_update_data, 16, uaddr @ 0, len @ 8);
layout!(kvm_sev_launch_measure, 16, uaddr @ 0, len @ 8);
layout!(
    kvm_userspace_memory_region2, 160,
    slot @ 0, flags @ 4, guest_phys_addr @ 8, memory_size @ 16, userspace_addr @ 24,
    guest_memfd_offset @ 32, guest_memfd @ 40, pad1 @ 44, pad2 @ 48,
);
layout!(kvm_create_guest_memfd, 64, size @ 0, flags @ 8, reserved @ 16);
layout!(kvm_memory_attributes, 32, address @ 0, size @ 8, attributes @ 16, flags @ 24);
layout!(kvm_enc_region, 16, addr @ 0, size @ 8);
layout!(kvm_device_attr, 24, flags @ 0, group @ 4, attr @ 8, addr @ 16);

/// `enum sev_cmd_id` (include/uapi/linux/kvm.h).
mod id {
    pub const LAUNCH_START: u32 = 2;
    pub const LAUNCH_UPDATE_DATA: u32 = 3;
    pub const LAUNCH_UPDATE_VMSA: u32 = 4;
    pub const LAUNCH_MEASURE: u32 = 6;
    pub const LAUNCH_FINISH: u32 = 7;
    pub const INIT2: u32 = 22;
    pub const SNP_LAUNCH_START: u32 = 100;
    pub const SNP_LAUNCH_UPDATE: u32 = 101;
    pub const SNP_LAUNCH_FINISH: u32 = 102;
    pub const SNP_ENABLE_REQ_CERTS: u32 = 103;
}

/// `KVM_GET_DEVICE_ATTR`, `_IOW(KVMIO, 0xe2, struct kvm_device_attr)`.
const KVM_GET_DEVICE_ATTR: libc::c_ulong = 0x4018_aee2;
/// `KVM_X86_GRP_SEV`.
const GRP_SEV: u32 = 1;

/// Issues SEV command `id` with `data` (or none).
///
/// # Safety
///
/// `data` must be null (for the commands that take none) or point to the structure
/// command `id` takes, valid for reads and writes during the call; every host address in
/// it must point to memory the kernel may read (and, for a CPUID page or a measurement,
/// write) that holds no Rust object another reference is using.
unsafe fn command<T>(
    vm: &VmFd,
    name: &'static str,
    id: u32,
    data: *mut T,
    sev_fd: RawFd,
) -> Result<(), CommandError> {
    let mut cmd = kvm_sev_cmd {
        id,
        data: u64::try_from(data.addr()).unwrap_or(0),
        sev_fd: u32::try_from(sev_fd).unwrap_or(u32::MAX),
        ..Default::default()
    };
    // SAFETY: `cmd` is a valid kvm_sev_cmd; what it points to is the caller's guarantee.
    match unsafe { vm.encrypt_op(&raw mut cmd) } {
        Ok(()) => Ok(()),
        Err(e) => Err(CommandError {
            command: name,
            errno: e.errno(),
            fw_error: cmd.error,
            tdx_status: 0,
            why: None,
        }),
    }
}

/// `KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, attr)` on /dev/kvm.
pub(super) fn sev_attr(kvm: &Kvm, attr: u64) -> Result<u64, i32> {
    let mut value = 0u64;
    let dev = kvm_device_attr {
        flags: 0,
        group: GRP_SEV,
        attr,
        addr: u64::try_from((&raw mut value).addr()).unwrap_or(0),
    };
    // SAFETY: the ioctl reads `dev` and writes 8 bytes at `dev.addr`, which is `value`,
    // alive for the call.
    let r = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_DEVICE_ATTR, &raw const dev) };
    if r == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

/// `KVM_SEV_INIT2`.
pub(super) fn init2(
    vm: &VmFd,
    sev_fd: RawFd,
    vmsa_features: u64,
    ghcb_version: u16,
) -> Result<(), CommandError> {
    let mut init = kvm_sev_init {
        vmsa_features,
        ghcb_version,
        ..Default::default()
    };
    // SAFETY: INIT2 takes a kvm_sev_init, which holds no address.
    unsafe { command(vm, "KVM_SEV_INIT2", id::INIT2, &raw mut init, sev_fd) }
}

/// `KVM_SEV_SNP_LAUNCH_START`.
pub(super) fn snp_launch_start(vm: &VmFd, sev_fd: RawFd, policy: u64) -> Result<(), CommandError> {
    let mut start = kvm_sev_snp_launch_start {
        policy,
        ..Default::default()
    };
    // SAFETY: a kvm_sev_snp_launch_start holds no address.
    unsafe {
        command(
            vm,
            "KVM_SEV_SNP_LAUNCH_START",
            id::SNP_LAUNCH_START,
            &raw mut start,
            sev_fd,
        )
    }
}

/// `KVM_SEV_SNP_LAUNCH_UPDATE`; `u` gets KVM's write-back.
///
/// # Safety
///
/// Unless the page type is ZERO, `[u.uaddr, u.uaddr + u.len)` must be memory of this
/// process that the kernel may read, and for a CPUID page write, holding no Rust object
/// in use (the VMM's mapping of guest memory).
pub(super) unsafe fn snp_launch_update(
    vm: &VmFd,
    sev_fd: RawFd,
    u: &mut SnpUpdate,
) -> Result<(), CommandError> {
    let mut update = kvm_sev_snp_launch_update {
        gfn_start: u.gfn_start,
        uaddr: u.uaddr,
        len: u.len,
        type_: u.page_type,
        ..Default::default()
    };
    // SAFETY: the source range is the caller's guarantee.
    let r = unsafe {
        command(
            vm,
            "KVM_SEV_SNP_LAUNCH_UPDATE",
            id::SNP_LAUNCH_UPDATE,
            &raw mut update,
            sev_fd,
        )
    };
    u.gfn_start = update.gfn_start;
    u.uaddr = update.uaddr;
    u.len = update.len;
    r
}

/// `KVM_SEV_SNP_LAUNCH_FINISH`.
pub(super) fn snp_launch_finish(
    vm: &VmFd,
    sev_fd: RawFd,
    f: &SnpFinish,
) -> Result<(), CommandError> {
    let (block, auth) = match &f.id_block {
        Some(id) => (id.block.as_ptr().addr(), id.auth.as_ptr().addr()),
        None => (0, 0),
    };
    let mut finish = kvm_sev_snp_launch_finish {
        id_block_uaddr: u64::try_from(block).unwrap_or(0),
        id_auth_uaddr: u64::try_from(auth).unwrap_or(0),
        id_block_en: u8::from(f.id_block.is_some()),
        auth_key_en: u8::from(f.id_block.as_ref().is_some_and(|i| i.author_key)),
        host_data: f.host_data,
        ..Default::default()
    };
    // SAFETY: the ID block (96 bytes) and auth block (4096 bytes) are `f`'s, borrowed for
    // the call; KVM only reads them (and only when id_block_en is set).
    unsafe {
        command(
            vm,
            "KVM_SEV_SNP_LAUNCH_FINISH",
            id::SNP_LAUNCH_FINISH,
            &raw mut finish,
            sev_fd,
        )
    }
}

/// `KVM_SEV_SNP_ENABLE_REQ_CERTS` (Linux 7.0+, no parameters).
pub(super) fn snp_enable_req_certs(vm: &VmFd, sev_fd: RawFd) -> Result<(), CommandError> {
    // SAFETY: the command takes no data.
    unsafe {
        command::<u8>(
            vm,
            "KVM_SEV_SNP_ENABLE_REQ_CERTS",
            id::SNP_ENABLE_REQ_CERTS,
            std::ptr::null_mut(),
            sev_fd,
        )
    }
}

/// `KVM_SEV_LAUNCH_START` with no session (handle 0: new keys).
pub(super) fn launch_start(vm: &VmFd, sev_fd: RawFd, policy: u32) -> Result<(), CommandError> {
    let mut start = kvm_sev_launch_start {
        policy,
        ..Default::default()
    };
    // SAFETY: with no DH certificate and session blob, the structure holds no address.
    unsafe {
        command(
            vm,
            "KVM_SEV_LAUNCH_START",
            id::LAUNCH_START,
            &raw mut start,
            sev_fd,
        )
    }
}

/// `KVM_SEV_LAUNCH_UPDATE_DATA`.
///
/// # Safety
///
/// `[uaddr, uaddr + len)` must be memory of this process holding guest RAM (the kernel
/// pins and encrypts it in place).
pub(super) unsafe fn launch_update_data(
    vm: &VmFd,
    sev_fd: RawFd,
    uaddr: u64,
    len: u32,
) -> Result<(), CommandError> {
    let mut data = kvm_sev_launch_update_data {
        uaddr,
        len,
        ..Default::default()
    };
    // SAFETY: the range is the caller's guarantee.
    unsafe {
        command(
            vm,
            "KVM_SEV_LAUNCH_UPDATE_DATA",
            id::LAUNCH_UPDATE_DATA,
            &raw mut data,
            sev_fd,
        )
    }
}

/// `KVM_SEV_LAUNCH_UPDATE_VMSA`.
pub(super) fn launch_update_vmsa(vm: &VmFd, sev_fd: RawFd) -> Result<(), CommandError> {
    // SAFETY: the command takes no data.
    unsafe {
        command::<u8>(
            vm,
            "KVM_SEV_LAUNCH_UPDATE_VMSA",
            id::LAUNCH_UPDATE_VMSA,
            std::ptr::null_mut(),
            sev_fd,
        )
    }
}

/// `KVM_SEV_LAUNCH_MEASURE`: the 48-byte MEASURE and MNONCE.
pub(super) fn launch_measure(vm: &VmFd, sev_fd: RawFd) -> Result<[u8; 48], CommandError> {
    let mut out = [0u8; 48];
    let mut measure = kvm_sev_launch_measure {
        uaddr: u64::try_from(out.as_mut_ptr().addr()).unwrap_or(0),
        len: 48,
        ..Default::default()
    };
    // SAFETY: KVM writes at most `len` (48) bytes at `uaddr`, which is `out`, alive and
    // not otherwise borrowed for the call.
    unsafe {
        command(
            vm,
            "KVM_SEV_LAUNCH_MEASURE",
            id::LAUNCH_MEASURE,
            &raw mut measure,
            sev_fd,
        )
    }?;
    Ok(out)
}

/// `KVM_SEV_LAUNCH_FINISH`.
pub(super) fn launch_finish(vm: &VmFd, sev_fd: RawFd) -> Result<(), CommandError> {
    // SAFETY: the command takes no data.
    unsafe {
        command::<u8>(
            vm,
            "KVM_SEV_LAUNCH_FINISH",
            id::LAUNCH_FINISH,
            std::ptr::null_mut(),
            sev_fd,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_device_attr_ioctl_number_is_the_kernels() {
        // _IOW(KVMIO = 0xAE, 0xe2, 24 bytes): dir 1 (write) << 30 | size << 16 | type << 8 | nr.
        let n: libc::c_ulong = (1 << 30) | (24 << 16) | (0xae << 8) | 0xe2;
        assert_eq!(super::KVM_GET_DEVICE_ATTR, n);
    }
}
