//! The VMM core every backend shares: guest memory from the plan, the in-kernel (or split)
//! irqchip and PIT, vCPU threads started in the plan's register state, the devices, and a
//! lifecycle that always tears down: the VM stops on the guest's request, on a fatal exit,
//! on the timeout or on SIGINT/SIGTERM, and every vCPU thread is joined before `run`
//! returns. The only `unsafe` is in [`sys`].

pub mod backend;
pub mod cc;
mod convert;
mod devices;
pub mod fwcfg;
mod ioapic;
pub mod kvm;
mod modelmem;
pub mod none;
pub mod platform;
mod rate;
pub mod record;
pub mod sev;
mod sys;
pub mod tdx;
mod vcpu;

pub use devices::{DEBUG_EXIT_PORT, SERIAL_IRQ, SERIAL_PORT, SerialOut};

use backend::{Backend, Hardware, PlatformOptions};
use cvm_attest::exchange::{EvidenceLine, LineError, LineScanner};
use cvm_firmware::Tee;
use cvm_firmware::plan::LaunchPlan;
use devices::{Devices, Interrupt};
use ioapic::{Ioapic, Msi, MsiSink};
use kvm_bindings::kvm_msi;
use kvm_ioctls::{Kvm, VmFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

/// KVM's identity-map page and real-mode TSS (three pages after it), just below the 16 MiB
/// that firmware may occupy under 4 GiB: QEMU's addresses, which the plan's `etc/e820`
/// reserves ([`cvm_firmware::fwcfg::KVM_RESERVED`]).
const IDENTITY_MAP_ADDR: u64 = cvm_firmware::fwcfg::KVM_RESERVED.gpa;
const TSS_ADDR: u64 = IDENTITY_MAP_ADDR + 0x1000;
/// The environment variable naming the KVM device node (default `/dev/kvm`).
pub const KVM_DEVICE_ENV: &str = "CVM_KVM_DEVICE";
/// I/O APIC pins for the split irqchip.
const SPLIT_IOAPIC_PINS: u64 = 24;

/// Which interrupt controllers KVM emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IrqChip {
    /// PIC, I/O APIC and local APICs in the kernel, with the PIT.
    #[default]
    InKernel,
    /// Local APICs in the kernel, the I/O APIC in the VMM, no PIC and no PIT (TDX
    /// requires this mode).
    Split,
}

/// How to run a plan.
pub struct RunOptions {
    /// Where the serial port writes.
    pub serial: SerialOut,
    /// Stop the guest after this long.
    pub timeout: Option<Duration>,
    /// The interrupt controllers.
    pub irqchip: IrqChip,
    /// Whether KVM emulates the 8254 PIT (in-kernel irqchip only). OVMF and Linux
    /// without kvmclock time themselves with it. Destroying KVM's PIT usually waits for a
    /// normal SRCU grace period (`kvm_pit_set_reinject` unregistering its notifiers; 16 ms,
    /// four jiffies, on the development machines' HZ=250 kernel).
    pub pit: bool,
    /// The chipset the firmware finds.
    pub machine: platform::Machine,
    /// Where the firmware's debug port (0x402) writes.
    pub firmware_log: Option<SerialOut>,
    /// `--attest`: watch the console for the guest's evidence line.
    pub attest: Option<AttestWatch>,
}

/// What `cvm launch --attest` watches the guest's console for.
pub struct AttestWatch {
    /// Called (on the vCPU thread that wrote it) with every evidence line the console
    /// carries, decoded or with its error; returns whether to stop the guest now.
    pub on_line: Box<dyn FnMut(Result<EvidenceLine, LineError>) -> bool + Send>,
    /// Stop the guest when no decodable line has come by then.
    pub timeout: Duration,
}

impl std::fmt::Debug for AttestWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestWatch")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The console's writer with `--attest`: writes through, and hands every evidence line
/// to the watch (which may stop the guest).
struct ConsoleTap {
    inner: SerialOut,
    scanner: LineScanner,
    on_line: Box<dyn FnMut(Result<EvidenceLine, LineError>) -> bool + Send>,
    seen: Arc<AtomicBool>,
    control: Arc<Control>,
}

impl std::io::Write for ConsoleTap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let (on_line, seen, control) = (&mut self.on_line, &self.seen, &self.control);
        self.scanner
            .feed(buf.get(..n).unwrap_or_default(), &mut |line| {
                if line.is_ok() {
                    seen.store(true, Ordering::Release);
                }
                if on_line(line) {
                    control.stop(StopReason::Attested);
                }
            });
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote its exit status to the debug-exit port.
    DebugExit {
        /// The status.
        status: u8,
        /// The vCPU that wrote it.
        vcpu: u32,
    },
    /// The guest asked for a reset (cvm does not reboot guests; the VM stops).
    Reset {
        /// The port it used.
        via: &'static str,
    },
    /// A triple fault (`KVM_EXIT_SHUTDOWN`).
    Shutdown {
        /// The vCPU.
        vcpu: u32,
    },
    /// `KVM_EXIT_SYSTEM_EVENT`.
    SystemEvent {
        /// The event type.
        kind: u32,
        /// The vCPU.
        vcpu: u32,
    },
    /// A TD reported a fatal error (`TDG.VP.VMCALL<ReportFatalError>`,
    /// `KVM_SYSTEM_EVENT_TDX_FATAL`).
    TdxFatal {
        /// The error code (R12).
        code: u64,
        /// The TD's message (R14, R15, RBX, RDI, RSI, R8, R9, RDX), printable ASCII.
        message: String,
        /// The vCPU.
        vcpu: u32,
    },
    /// An SEV-ES or SNP guest asked to be terminated (`KVM_SYSTEM_EVENT_SEV_TERM`).
    SevTerminate {
        /// The GHCB reason code set (0: general, 1: the GHCB protocol).
        reason_set: u8,
        /// The reason code.
        reason_code: u8,
        /// The vCPU.
        vcpu: u32,
    },
    /// The backend stopped the VM (a guest request it could not honour).
    Backend {
        /// What happened.
        what: String,
        /// The vCPU.
        vcpu: u32,
    },
    /// `KVM_EXIT_HLT` (a halt the kernel did not handle).
    Halted {
        /// The vCPU.
        vcpu: u32,
    },
    /// `KVM_EXIT_FAIL_ENTRY`.
    FailEntry {
        /// The hardware's entry failure reason.
        reason: u64,
        /// The vCPU.
        vcpu: u32,
    },
    /// `KVM_EXIT_INTERNAL_ERROR`, e.g. an instruction KVM cannot emulate.
    InternalError {
        /// The suberror (1: emulation failure).
        suberror: u32,
        /// The instruction bytes, when the kernel reports them.
        insn: Vec<u8>,
        /// The vCPU.
        vcpu: u32,
    },
    /// An exit cvm has no handler for.
    Unhandled {
        /// Its name.
        exit: &'static str,
        /// The vCPU.
        vcpu: u32,
    },
    /// `KVM_RUN` failed.
    RunFailed {
        /// The errno.
        errno: i32,
        /// The vCPU.
        vcpu: u32,
    },
    /// The timeout expired.
    Timeout(Duration),
    /// `--attest --after-attest stop`: the guest's evidence arrived.
    Attested,
    /// `--attest`: no evidence line came within the attestation timeout.
    AttestTimeout(Duration),
    /// SIGINT or SIGTERM.
    Signal,
}

impl StopReason {
    /// The guest's exit status when it stopped normally: its debug-exit status, or 0 for a
    /// reset request.
    pub fn guest_status(&self) -> Option<u8> {
        match self {
            StopReason::DebugExit { status, .. } => Some(*status),
            StopReason::Reset { .. } => Some(0),
            _ => None,
        }
    }

    /// A short machine-readable name.
    pub fn kind(&self) -> &'static str {
        match self {
            StopReason::DebugExit { .. } => "debug-exit",
            StopReason::Reset { .. } => "reset",
            StopReason::Shutdown { .. } => "triple-fault",
            StopReason::SystemEvent { .. } => "system-event",
            StopReason::SevTerminate { .. } => "sev-terminate",
            StopReason::TdxFatal { .. } => "tdx-fatal",
            StopReason::Backend { .. } => "backend-stop",
            StopReason::Halted { .. } => "halted",
            StopReason::FailEntry { .. } => "entry-failed",
            StopReason::InternalError { .. } => "internal-error",
            StopReason::Unhandled { .. } => "unhandled-exit",
            StopReason::RunFailed { .. } => "run-failed",
            StopReason::Timeout(_) => "timeout",
            StopReason::Attested => "attested",
            StopReason::AttestTimeout(_) => "attest-timeout",
            StopReason::Signal => "signal",
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::DebugExit { status, vcpu } => {
                write!(
                    f,
                    "the guest wrote exit status {status} to the debug-exit port (vCPU {vcpu})"
                )
            }
            StopReason::Reset { via } => write!(f, "the guest requested a reset through {via}"),
            StopReason::Shutdown { vcpu } => {
                write!(f, "vCPU {vcpu} triple-faulted (KVM_EXIT_SHUTDOWN)")
            }
            StopReason::SystemEvent { kind, vcpu } => {
                write!(
                    f,
                    "vCPU {vcpu} raised system event {kind} (KVM_EXIT_SYSTEM_EVENT)"
                )
            }
            StopReason::SevTerminate {
                reason_set,
                reason_code,
                vcpu,
            } => write!(
                f,
                "vCPU {vcpu}: the guest asked to be terminated (reason set {reason_set}, code \
                 {reason_code:#x})"
            ),
            StopReason::Backend { what, vcpu } => write!(f, "vCPU {vcpu}: {what}"),
            StopReason::TdxFatal {
                code,
                message,
                vcpu,
            } => write!(
                f,
                "vCPU {vcpu}: the TD reported a fatal error {code:#x}{}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
            StopReason::Halted { vcpu } => write!(f, "vCPU {vcpu} halted (KVM_EXIT_HLT)"),
            StopReason::FailEntry { reason, vcpu } => {
                write!(
                    f,
                    "vCPU {vcpu} could not enter the guest (KVM_EXIT_FAIL_ENTRY, reason {reason:#x})"
                )
            }
            StopReason::InternalError {
                suberror,
                insn,
                vcpu,
            } => {
                write!(f, "vCPU {vcpu}: KVM internal error, suberror {suberror}")?;
                if *suberror == 1 {
                    write!(f, " (emulation failure")?;
                    if !insn.is_empty() {
                        write!(f, ", instruction bytes {}", hex::encode(insn))?;
                    }
                    write!(f, ")")?;
                }
                Ok(())
            }
            StopReason::Unhandled { exit, vcpu } => {
                write!(f, "vCPU {vcpu}: {exit}, which cvm does not handle")
            }
            StopReason::RunFailed { errno, vcpu } => {
                write!(
                    f,
                    "vCPU {vcpu}: KVM_RUN failed: {}",
                    std::io::Error::from_raw_os_error(*errno)
                )
            }
            StopReason::Timeout(d) => write!(f, "the guest did not stop within {d:?}"),
            StopReason::Attested => write!(f, "the guest's evidence arrived"),
            StopReason::AttestTimeout(d) => {
                write!(f, "the guest wrote no CVM-EVIDENCE line within {d:?}")
            }
            StopReason::Signal => write!(f, "stopped by SIGINT or SIGTERM"),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Why the VM stopped.
    pub reason: StopReason,
    /// From the first `KVM_RUN` to the stop.
    pub elapsed: Duration,
    /// Port and MMIO accesses that reached no device.
    pub unknown_accesses: u64,
    /// What the hardware reported of the launch measurement (SEV, SEV-ES: LAUNCH_MEASURE).
    pub launch_measure: Option<Vec<u8>>,
}

/// Why a launch failed; everything created before the failing step is torn down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The KVM device cannot be opened, or is not KVM.
    #[error("KVM is not available: {path}: {reason}")]
    NoKvm {
        /// The device node.
        path: String,
        /// Why.
        reason: String,
    },
    /// A KVM call failed.
    #[error("{step}")]
    Kvm {
        /// The step.
        step: &'static str,
        /// The error.
        source: kvm_ioctls::Error,
    },
    /// A step failed for another reason.
    #[error("{0}: {1}")]
    Step(&'static str, String),
    /// The backend cannot do what the plan or the options ask.
    #[error("the {tee} backend cannot launch this: {what}")]
    Unsupported {
        /// The backend's TEE.
        tee: Tee,
        /// What it cannot do.
        what: String,
    },
    /// An SEV or TDX command failed (KVM's errno and the AMD-SP's or TDX module's status).
    #[error("{step}: {source}")]
    Command {
        /// What was being launched.
        step: String,
        /// The failure.
        source: cc::CommandError,
    },
    /// The host lacks what the launch needs (checked before anything is created).
    #[error("{0}")]
    Unavailable(String),
    /// A plan built for another TEE than the backend's.
    #[error("a {plan} plan cannot be launched by the {backend} backend")]
    PlanMismatch {
        /// The plan's TEE.
        plan: Tee,
        /// The backend's.
        backend: Tee,
    },
}

impl LaunchError {
    fn kvm(step: &'static str) -> impl Fn(kvm_ioctls::Error) -> LaunchError {
        move |source| LaunchError::Kvm { step, source }
    }
}

/// The stop decision, shared by the vCPU threads and the main thread.
pub(crate) struct Control {
    stopping: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    wake: EventFd,
}

impl Control {
    /// Records the first reason to stop and wakes the main thread.
    fn stop(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock()
            && r.is_none()
        {
            *r = Some(reason);
        }
        self.stopping.store(true, Ordering::Release);
        if let Err(e) = self.wake.write(1) {
            tracing::error!("cannot wake the VMM's main thread: {e}");
        }
    }
}

/// The VM's resources, dropped in field order: vCPU threads are joined first (see
/// [`Vm::shutdown`]), then guest memory leaves the VM and is unmapped ([`sys::GuestRam`]
/// deletes its slots first), then the VM fd closes. The VM fd has no other long-lived
/// owner: the I/O APIC holds only a weak reference. Deleting the memory slots before the
/// VM fd closes also makes teardown quicker: creating the in-kernel irqchip's devices
/// leaves KVM freeing the replaced I/O bus tables after a normal SRCU grace period, which
/// closing the VM waits for (`srcu_barrier`), while deleting a memory slot waits for an
/// expedited one, which ends the pending period sooner (with `--pit off`: a 19 ms median
/// launch became 12 ms on the development machine).
struct Vm {
    threads: Vec<JoinHandle<()>>,
    control: Arc<Control>,
    ram: Option<Arc<sys::GuestRam>>,
    vm: Arc<VmFd>,
}

/// The running VM as backends see it ([`backend::Runtime`]): its memory attributes and
/// backing, on KVM.
struct KvmRuntime {
    vm: Arc<VmFd>,
    ram: Arc<sys::GuestRam>,
}

impl backend::Runtime for KvmRuntime {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.ram.holds_guest_range(gpa, len)
    }

    fn set_private(&self, gpa: u64, len: u64, private: bool) -> Result<(), i32> {
        if !self.is_ram(gpa, len) {
            return Err(libc::EINVAL);
        }
        self.vm
            .set_memory_attributes(kvm_bindings::kvm_memory_attributes {
                address: gpa,
                size: len,
                attributes: if private {
                    u64::from(kvm_bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE)
                } else {
                    0
                },
                flags: 0,
            })
            .map_err(|e| e.errno())
    }

    fn discard(&self, gpa: u64, len: u64, private_side: bool) -> Result<(), i32> {
        self.ram
            .discard(gpa, len, private_side)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), i32> {
        use vm_memory::Bytes;
        let len = u64::try_from(buf.len()).map_err(|_| libc::EINVAL)?;
        if !self.is_ram(gpa, len) {
            return Err(libc::EINVAL);
        }
        self.ram
            .memory()
            .read_slice(buf, vm_memory::GuestAddress(gpa))
            .map_err(|_| libc::EFAULT)
    }

    fn interrupt(&self, apic_id: u32, vector: u8) -> Result<(), i32> {
        // An MSI to the local APIC: address 0xfee00000 with the destination APIC ID in bits
        // 19:12 (and the upper bits of an x2APIC ID in address_hi), fixed delivery, edge.
        let msi = kvm_msi {
            address_lo: 0xfee0_0000 | ((apic_id & 0xff) << 12),
            address_hi: apic_id & !0xff,
            data: u32::from(vector),
            ..Default::default()
        };
        self.vm.signal_msi(msi).map(drop).map_err(|e| e.errno())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), i32> {
        use vm_memory::Bytes;
        let len = u64::try_from(data.len()).map_err(|_| libc::EINVAL)?;
        if !self.is_ram(gpa, len) {
            return Err(libc::EINVAL);
        }
        self.ram
            .memory()
            .write_slice(data, vm_memory::GuestAddress(gpa))
            .map_err(|_| libc::EFAULT)
    }
}

/// The I/O APIC's messages, sent to the VM's local APICs while the VM exists.
struct KvmMsi(Weak<VmFd>);

impl MsiSink for KvmMsi {
    fn send(&self, msi: Msi) -> std::io::Result<()> {
        let Some(vm) = self.0.upgrade() else {
            return Ok(());
        };
        let msi = kvm_msi {
            address_lo: msi.address,
            data: msi.data,
            ..Default::default()
        };
        vm.signal_msi(msi)
            .map(drop)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

/// Written by the SIGINT/SIGTERM handler.
static SIGNAL_EVENT: OnceLock<EventFd> = OnceLock::new();

extern "C" fn on_stop_signal(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if let Some(e) = SIGNAL_EVENT.get() {
        // Nothing to do if the write fails: the eventfd counter is already non-zero.
        let _ = e.write(1);
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// Drives `backend` through the launch of `plan` on `hw`, phase by phase: the VM and its
/// platform, guest memory, every plan step in order, every vCPU, finalization. This is the
/// only way a plan reaches the hardware, so what `hw` sees is the plan (and a
/// [`record::Recorder`] shows it).
pub fn setup(
    hw: &mut dyn Hardware,
    backend: &mut dyn Backend,
    plan: &LaunchPlan<'_>,
    opts: &PlatformOptions,
) -> Result<(), LaunchError> {
    if plan.tee() != backend.tee() {
        return Err(LaunchError::PlanMismatch {
            plan: plan.tee(),
            backend: backend.tee(),
        });
    }
    backend.create_vm(hw, opts)?;
    backend.prepare_memory(hw, plan)?;
    tracing::info!("loading {} plan steps", plan.steps.len());
    for step in &plan.steps {
        backend.load(hw, step)?;
    }
    for id in 0..plan.vcpu_count {
        let state = usize::try_from(id).ok().and_then(|i| plan.vcpus.get(i));
        backend.setup_vcpu(hw, id, state)?;
    }
    backend.finalize(hw)
}

/// Launches `plan` with `backend` on KVM and runs it until it stops; every resource is
/// released before this returns, on success and on error alike.
pub fn run(
    plan: &LaunchPlan<'_>,
    mut backend: Box<dyn Backend>,
    opts: RunOptions,
) -> Result<Outcome, LaunchError> {
    install_stop_handlers()?;
    let mut hw = kvm::KvmHardware::new(open_kvm()?);
    let platform = PlatformOptions {
        irqchip: opts.irqchip,
        pit: opts.pit,
    };
    // On an error, dropping `hw` releases whatever was created, vCPUs and memory first.
    setup(&mut hw, backend.as_mut(), plan, &platform)?;
    let launch_measure = backend.launch_measure();
    if let Some(m) = &launch_measure {
        tracing::info!("LAUNCH_MEASURE {}", hex::encode(m));
    }
    let launched = hw.into_launched()?;
    let control = Arc::new(Control {
        stopping: AtomicBool::new(false),
        reason: Mutex::new(None),
        wake: EventFd::new(EFD_NONBLOCK)
            .map_err(|e| LaunchError::Step("create the stop event", e.to_string()))?,
    });
    let mut vm = Vm {
        threads: Vec::new(),
        control,
        ram: Some(Arc::new(launched.ram)),
        vm: launched.vm,
    };
    let result = vm
        .start(plan, Arc::from(backend), launched.vcpus, opts)
        .map(|o| Outcome {
            launch_measure,
            ..o
        });
    // Whatever happened, no vCPU thread outlives this function, and the memory leaves
    // the VM before the VM fd closes.
    vm.shutdown();
    vm.ram = None;
    result
}

/// Opens `/dev/kvm`, or the node `CVM_KVM_DEVICE` names.
fn open_kvm() -> Result<Kvm, LaunchError> {
    let path = std::env::var_os(KVM_DEVICE_ENV).unwrap_or_else(|| "/dev/kvm".into());
    let c_path = std::ffi::CString::new(path.as_encoded_bytes().to_vec())
        .map_err(|_| LaunchError::Step("open KVM", format!("{KVM_DEVICE_ENV} contains a NUL")))?;
    let no_kvm = |reason: String| LaunchError::NoKvm {
        path: path.to_string_lossy().into_owned(),
        reason,
    };
    let kvm = Kvm::new_with_path(&c_path).map_err(|e| no_kvm(format!("cannot open it: {e}")))?;
    // A node that opens but is not KVM (another device, a file) fails here, before
    // anything is created, rather than at KVM_CREATE_VM.
    match kvm.get_api_version() {
        KVM_API_VERSION => Ok(kvm),
        v => Err(no_kvm(format!(
            "not a KVM device (KVM_GET_API_VERSION answered {v}, not {KVM_API_VERSION})"
        ))),
    }
}

/// The only KVM API version there is (include/uapi/linux/kvm.h, `KVM_API_VERSION`).
const KVM_API_VERSION: i32 = 12;

/// Installs the SIGINT/SIGTERM handlers, before anything slow is set up: a signal that
/// arrives while guest memory is being mapped then stops the launch, which tears down
/// and reports, instead of killing the process with no summary.
fn install_stop_handlers() -> Result<(), LaunchError> {
    let step = "install the stop signal handlers";
    if SIGNAL_EVENT.get().is_none() {
        let e = EventFd::new(EFD_NONBLOCK).map_err(|e| LaunchError::Step(step, e.to_string()))?;
        let _ = SIGNAL_EVENT.set(e);
    }
    for num in [libc::SIGINT, libc::SIGTERM] {
        register_signal_handler(num, on_stop_signal)
            .map_err(|e| LaunchError::Step(step, e.to_string()))?;
    }
    Ok(())
}

impl Vm {
    /// Connects the devices and runs the vCPUs until the guest stops.
    fn start(
        &mut self,
        plan: &LaunchPlan<'_>,
        backend: Arc<dyn Backend>,
        vcpus: Vec<(u32, kvm_ioctls::VcpuFd)>,
        opts: RunOptions,
    ) -> Result<Outcome, LaunchError> {
        let irq = match opts.irqchip {
            IrqChip::InKernel => {
                let fd = EventFd::new(EFD_NONBLOCK)
                    .map_err(|e| LaunchError::Step("create the serial irqfd", e.to_string()))?;
                self.vm
                    .register_irqfd(&fd, SERIAL_IRQ)
                    .map_err(LaunchError::kvm("connect the serial port's interrupt"))?;
                Interrupt::Irqfd(fd)
            }
            IrqChip::Split => {
                // The ID the MP table gives the I/O APIC.
                let id = cvm_firmware::x86::mptable::ioapic_id(plan.vcpu_count).unwrap_or(0);
                let sink = Box::new(KvmMsi(Arc::downgrade(&self.vm)));
                let pin = usize::try_from(SERIAL_IRQ).unwrap_or(usize::MAX);
                Interrupt::Ioapic(Arc::new(Ioapic::new(id, sink)), pin)
            }
        };
        let control = Arc::clone(&self.control);
        let ram = self
            .ram
            .clone()
            .ok_or_else(|| LaunchError::Step("start the VM", "no guest memory".into()))?;
        let runtime: Arc<dyn backend::Runtime> = Arc::new(KvmRuntime {
            vm: Arc::clone(&self.vm),
            ram,
        });
        let low = plan
            .ram
            .iter()
            .filter(|r| r.gpa < 1 << 32)
            .map(|r| r.len)
            .sum();
        let high = plan
            .ram
            .iter()
            .filter(|r| r.gpa >= 1 << 32)
            .map(|r| r.len)
            .sum();
        let seen = Arc::new(AtomicBool::new(false));
        let (serial, attest_timeout): (SerialOut, _) = match opts.attest {
            Some(watch) => (
                Box::new(ConsoleTap {
                    inner: opts.serial,
                    scanner: LineScanner::default(),
                    on_line: watch.on_line,
                    seen: Arc::clone(&seen),
                    control: Arc::clone(&self.control),
                }),
                Some(watch.timeout),
            ),
            None => (opts.serial, None),
        };
        let mut devices = Devices::new(serial, irq).with_platform(platform::Platform::new(
            opts.machine,
            low,
            high,
            opts.firmware_log,
        ));
        if !plan.fw_cfg.is_empty() {
            let fw_cfg = fwcfg::FwCfgDevice::new(&plan.fw_cfg, Arc::clone(&runtime))
                .map_err(|e| LaunchError::Step("set up fw_cfg", e))?;
            devices = devices.with_fw_cfg(fw_cfg);
        }
        let devices = Arc::new(devices);

        let wait = Waiter::new(&control)?;
        register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| LaunchError::Step("install the vCPU kick handler", e.to_string()))?;
        let start = Instant::now();
        tracing::info!(
            "starting {} ({:?} irqchip{})",
            crate::output::count(u64::from(plan.vcpu_count), "vCPU", "vCPUs"),
            opts.irqchip,
            if opts.pit { ", PIT" } else { "" }
        );
        for (id, fd) in vcpus {
            let (d, c, b, r) = (
                Arc::clone(&devices),
                Arc::clone(&control),
                Arc::clone(&backend),
                Arc::clone(&runtime),
            );
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || vcpu::run(fd, id, d, c, b, r))
                .map_err(|e| LaunchError::Step("start a vCPU thread", e.to_string()))?;
            self.threads.push(t);
        }

        let waited = wait.until_stop(
            &control,
            start,
            opts.timeout,
            attest_timeout.map(|t| (t, &*seen)),
        );
        let elapsed = start.elapsed();
        tracing::info!("the guest stopped after {elapsed:?}");
        if let Ok(Some(reason)) = &waited {
            control.stop(reason.clone());
        }
        self.shutdown();
        waited?;
        let reason = control
            .reason
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .ok_or_else(|| LaunchError::Step("wait for the guest", "no stop reason".into()))?;
        Ok(Outcome {
            reason,
            elapsed,
            unknown_accesses: devices.unknown_accesses(),
            launch_measure: None,
        })
    }

    /// Stops every vCPU thread: each is signalled until it has left `KVM_RUN` and
    /// finished (a signal that lands just before it enters `KVM_RUN` is repeated).
    fn shutdown(&mut self) {
        self.control.stopping.store(true, Ordering::Release);
        while self.threads.iter().any(|t| !t.is_finished()) {
            for t in self.threads.iter().filter(|t| !t.is_finished()) {
                if let Err(e) = t.kill(kick_signal()) {
                    tracing::debug!("kicking a vCPU thread: {e}");
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a vCPU thread panicked");
            }
        }
    }
}

/// Waits for a vCPU's stop, a stop signal, or the deadline.
struct Waiter {
    epoll: Epoll,
}

const WAKE_VCPU: u64 = 1;
const WAKE_SIGNAL: u64 = 2;

impl Waiter {
    fn new(control: &Control) -> Result<Self, LaunchError> {
        let step = "set up the VMM's event loop";
        let err = |e: std::io::Error| LaunchError::Step(step, e.to_string());
        let epoll = Epoll::new().map_err(err)?;
        let sig = SIGNAL_EVENT
            .get()
            .ok_or_else(|| LaunchError::Step(step, "the stop handlers are not installed".into()))?;
        use std::os::fd::AsRawFd;
        for (fd, tag) in [
            (control.wake.as_raw_fd(), WAKE_VCPU),
            (sig.as_raw_fd(), WAKE_SIGNAL),
        ] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, tag),
                )
                .map_err(err)?;
        }
        Ok(Waiter { epoll })
    }

    fn until_stop(
        &self,
        control: &Control,
        start: Instant,
        timeout: Option<Duration>,
        attest: Option<(Duration, &AtomicBool)>,
    ) -> Result<Option<StopReason>, LaunchError> {
        let mut events = [EpollEvent::default(); 2];
        loop {
            if control.stopping.load(Ordering::Acquire) {
                return Ok(None); // a vCPU recorded why
            }
            // The attestation deadline counts until the evidence has come.
            let waiting = attest.filter(|(_, seen)| !seen.load(Ordering::Acquire));
            if let Some((t, _)) = waiting
                && start.elapsed() >= t
            {
                return Ok(Some(StopReason::AttestTimeout(t)));
            }
            let deadline = [
                timeout.map(|t| (start + t, StopReason::Timeout(t))),
                waiting.map(|(t, _)| (start + t, StopReason::AttestTimeout(t))),
            ]
            .into_iter()
            .flatten()
            .min_by_key(|(d, _)| *d);
            let timeout_ms = match deadline.as_ref().map(|(d, _)| *d) {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(deadline.map(|(_, why)| why));
                    }
                    i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
                }
                None => -1,
            };
            let n = match self.epoll.wait(timeout_ms, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LaunchError::Step("wait for the guest", e.to_string())),
            };
            for ev in events.iter().take(n) {
                if ev.data() == WAKE_SIGNAL {
                    return Ok(Some(StopReason::Signal));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use cvm_firmware::plan::{Origin, PageKind, RamRange, Step};
    use std::borrow::Cow;

    fn plan_with(kind: PageKind, gpa: u64) -> LaunchPlan<'static> {
        LaunchPlan {
            steps: vec![Step {
                gpa,
                len: 4096,
                kind,
                data: Cow::Owned(if kind == PageKind::Normal {
                    vec![0xf4; 4096]
                } else {
                    Vec::new()
                }),
                origin: Origin::Firmware,
            }],
            vcpus: Vec::new(),
            vcpu_count: 1,
            ram: vec![RamRange {
                gpa: 0,
                len: 2 << 20,
            }],
            fw_cfg: cvm_firmware::fwcfg::FwCfg::default(),
            part: cvm_firmware::plan::TeePart::None,
        }
    }

    fn platform() -> PlatformOptions {
        PlatformOptions {
            irqchip: IrqChip::InKernel,
            pit: false,
        }
    }

    #[test]
    fn a_step_the_backend_cannot_load_is_a_typed_error_and_nothing_follows_it() {
        let mut hw = record::Recorder::default();
        let err = setup(
            &mut hw,
            &mut none::NoneBackend,
            &plan_with(PageKind::Secrets, 0x1000),
            &platform(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, LaunchError::Unsupported { tee: Tee::None, what } if what.starts_with("secrets pages")),
            "{err}"
        );
        // The VM and its memory were set up; no vCPU was.
        assert!(
            matches!(hw.ops.last(), Some(record::Op::AddMemory(_))),
            "{:?}",
            hw.ops
        );
    }

    #[test]
    fn a_step_straddling_the_end_of_ram_is_refused_before_memory_is_mapped() {
        let mut hw = record::Recorder::default();
        let err = setup(
            &mut hw,
            &mut none::NoneBackend,
            &plan_with(PageKind::Normal, (2 << 20) - 2048),
            &platform(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("straddles the end of RAM"),
            "{err}"
        );
        assert!(!hw.ops.iter().any(|o| matches!(o, record::Op::AddMemory(_))));
    }

    #[test]
    fn a_plan_of_another_tee_is_refused() {
        let mut plan = plan_with(PageKind::Normal, 0x1000);
        plan.part = cvm_firmware::plan::TeePart::Snp(cvm_firmware::plan::SevPart {
            sev_features: 1,
            kernel_hashes: None,
        });
        let mut hw = record::Recorder::default();
        let err = setup(&mut hw, &mut none::NoneBackend, &plan, &platform()).unwrap_err();
        assert!(matches!(
            err,
            LaunchError::PlanMismatch {
                plan: Tee::Snp,
                backend: Tee::None
            }
        ));
        assert!(hw.ops.is_empty());
    }
}
