//! The confidential backends' commands (KVM's SEV and TDX ioctls): their failures, with
//! KVM's errno and the AMD-SP's or the TDX module's status, by name.

/// A failed SEV or TDX command: the ioctl's errno and, where the AMD-SP or the TDX module
/// answered, its status (`kvm_sev_cmd.error`, `kvm_tdx_cmd.hw_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command} failed: {}{}{}{}", errno_text(*.errno), fw_text(*.fw_error),
        tdx_text(*.tdx_status), why.as_deref().map(|w| format!(": {w}")).unwrap_or_default())]
pub struct CommandError {
    /// The command (`KVM_SEV_SNP_LAUNCH_UPDATE`, ...).
    pub command: &'static str,
    /// The ioctl's errno.
    pub errno: i32,
    /// The AMD-SP's status, 0 when the firmware was not reached or succeeded.
    pub fw_error: u32,
    /// The TDX module's status (`hw_error`), 0 when none.
    pub tdx_status: u64,
    /// What the kernel or firmware objected to, when the model knows it.
    pub why: Option<String>,
}

impl CommandError {
    /// A failure with no firmware status.
    pub fn kernel(command: &'static str, errno: i32) -> Self {
        CommandError {
            command,
            errno,
            fw_error: 0,
            tdx_status: 0,
            why: None,
        }
    }

    /// A failure the firmware reported (KVM returns `-EIO` with its status).
    pub fn firmware(command: &'static str, fw_error: u32) -> Self {
        CommandError {
            command,
            errno: libc::EIO,
            fw_error,
            tdx_status: 0,
            why: None,
        }
    }

    /// A failure with the TDX module's status.
    pub fn module(command: &'static str, errno: i32, tdx_status: u64) -> Self {
        CommandError {
            command,
            errno,
            fw_error: 0,
            tdx_status,
            why: None,
        }
    }

    /// The same failure, explained.
    pub fn because(mut self, why: impl Into<String>) -> Self {
        self.why = Some(why.into());
        self
    }
}

fn errno_text(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTTY => "ENOTTY",
        libc::E2BIG => "E2BIG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {errno}"),
    };
    format!("{name} (errno {errno})")
}

fn fw_text(code: u32) -> String {
    if code == 0 {
        return String::new();
    }
    match crate::vmm::sev::fw_error_name(code) {
        Some(n) => format!(", firmware status {n} ({code:#x})"),
        None => format!(", firmware status {code:#x}"),
    }
}

fn tdx_text(status: u64) -> String {
    if status == 0 {
        return String::new();
    }
    let operand = status & 0xffff_ffff;
    match tdx_status_name(status) {
        Some(n) if status >> 32 == TDX_OPERAND_INVALID >> 32 && operand != 0 => {
            format!(", TDX module status {n} ({status:#x}, operand {operand})")
        }
        Some(n) => format!(", TDX module status {n} ({status:#x})"),
        None => format!(", TDX module status {status:#x}"),
    }
}

/// The TDX module's invalid-operand status class; the low 32 bits name the operand
/// (TD_PARAMS: 64 ATTRIBUTES, 65 XFAM, 66 EXEC_CONTROLS, 67 EPTP, 68 MAX_VCPUS,
/// 69 CPUID_CONFIG, 70 TSC_FREQUENCY).
pub const TDX_OPERAND_INVALID: u64 = 0xC000_0100_0000_0000;

/// The name of a TDX module status, by its class (the upper 32 bits; intel/tdx-module
/// `include/auto_gen/tdx_error_codes_defs.h`).
pub fn tdx_status_name(status: u64) -> Option<&'static str> {
    Some(match status >> 32 {
        0xC000_0100 => "TDX_OPERAND_INVALID",
        0x8000_0200 => "TDX_OPERAND_BUSY",
        0xC000_0608 => "TDX_OP_STATE_INCORRECT",
        0xC000_0609 => "TDX_NO_VCPUS",
        0xC000_0B00 => "TDX_EPT_WALK_FAILED",
        0xC000_0B03 => "TDX_EPT_ENTRY_NOT_PRESENT",
        0xC000_0B0D => "TDX_EPT_ENTRY_STATE_INCORRECT",
        0x8000_0203 => "TDX_RND_NO_ENTROPY",
        _ => return None,
    })
}
