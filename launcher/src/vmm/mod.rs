//! The VMM core every backend shares: guest memory from the plan, the in-kernel (or split)
//! irqchip and PIT, vCPU threads started in the plan's register state, the devices, and a
//! lifecycle that always tears down: the VM stops on the guest's request, on a fatal exit,
//! on the timeout or on SIGINT/SIGTERM, and every vCPU thread is joined before `run`
//! returns. The only `unsafe` is in [`sys`].

mod devices;
mod ioapic;
mod sys;
mod vcpu;

pub use devices::{DEBUG_EXIT_PORT, SERIAL_IRQ, SERIAL_PORT, SerialOut};

use cvm_firmware::plan::{LaunchPlan, PageKind};
use devices::{Devices, Interrupt};
use ioapic::{Ioapic, Msi, MsiSink};
use kvm_bindings::{
    KVM_CAP_SPLIT_IRQCHIP, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_enable_cap, kvm_msi,
    kvm_pit_config,
};
use kvm_ioctls::{Kvm, VmFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

/// KVM's real-mode TSS (three pages) and identity-map page, just below the 16 MiB that
/// firmware may occupy under 4 GiB (QEMU's addresses).
const TSS_ADDR: usize = 0xfeff_d000;
const IDENTITY_MAP_ADDR: u64 = 0xfeff_c000;
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
            StopReason::Halted { .. } => "halted",
            StopReason::FailEntry { .. } => "entry-failed",
            StopReason::InternalError { .. } => "internal-error",
            StopReason::Unhandled { .. } => "unhandled-exit",
            StopReason::RunFailed { .. } => "run-failed",
            StopReason::Timeout(_) => "timeout",
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
                        write!(f, ", instruction bytes {}", cvm_firmware::hex::encode(insn))?;
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
/// [`Vm::shutdown`]), then the VM fd closes, then the guest memory is unmapped. The VM fd
/// has no other owner: the I/O APIC holds only a weak reference.
struct Vm {
    threads: Vec<JoinHandle<()>>,
    control: Arc<Control>,
    vm: Arc<VmFd>,
    memory: GuestMemoryMmap<()>,
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

/// Runs `plan` as a plain KVM guest until it stops; every resource is released before
/// this returns, on success and on error alike.
pub fn run(plan: &LaunchPlan<'_>, opts: RunOptions) -> Result<Outcome, LaunchError> {
    install_stop_handlers()?;
    let kvm = open_kvm()?;
    let vm_fd = kvm.create_vm().map_err(LaunchError::kvm("create the VM"))?;
    let memory = guest_memory(plan)?;
    let control = Arc::new(Control {
        stopping: AtomicBool::new(false),
        reason: Mutex::new(None),
        wake: EventFd::new(EFD_NONBLOCK)
            .map_err(|e| LaunchError::Step("create the stop event", e.to_string()))?,
    });
    let mut vm = Vm {
        threads: Vec::new(),
        control,
        vm: Arc::new(vm_fd),
        memory,
    };
    let result = vm.launch(&kvm, plan, opts);
    // Whatever happened, no vCPU thread outlives this function.
    vm.shutdown();
    vm.remove_memory();
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
    fn launch(
        &mut self,
        kvm: &Kvm,
        plan: &LaunchPlan<'_>,
        opts: RunOptions,
    ) -> Result<Outcome, LaunchError> {
        for (slot, region) in self.memory.iter().enumerate() {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            tracing::debug!(
                "KVM_SET_USER_MEMORY_REGION slot {slot}: gpa {:#x}, {:#x} bytes",
                region.start_addr().0,
                region.len()
            );
            sys::set_memory_region(&self.vm, slot, region)
                .map_err(LaunchError::kvm("register guest memory"))?;
        }
        load(plan, &self.memory)?;
        tracing::debug!(
            "KVM_SET_TSS_ADDR {TSS_ADDR:#x}, KVM_SET_IDENTITY_MAP_ADDR {IDENTITY_MAP_ADDR:#x}"
        );

        self.vm
            .set_tss_address(TSS_ADDR)
            .map_err(LaunchError::kvm("set the TSS address"))?;
        self.vm
            .set_identity_map_address(IDENTITY_MAP_ADDR)
            .map_err(LaunchError::kvm("set the identity map address"))?;
        match opts.irqchip {
            IrqChip::InKernel => {
                tracing::debug!(
                    "KVM_CREATE_IRQCHIP{}",
                    if opts.pit { ", KVM_CREATE_PIT2" } else { "" }
                );
                self.vm
                    .create_irq_chip()
                    .map_err(LaunchError::kvm("create the in-kernel irqchip"))?;
                if opts.pit {
                    let pit = kvm_pit_config {
                        flags: KVM_PIT_SPEAKER_DUMMY,
                        ..Default::default()
                    };
                    self.vm
                        .create_pit2(pit)
                        .map_err(LaunchError::kvm("create the PIT"))?;
                }
            }
            IrqChip::Split => {
                let mut cap = kvm_enable_cap {
                    cap: KVM_CAP_SPLIT_IRQCHIP,
                    ..Default::default()
                };
                if let Some(a) = cap.args.first_mut() {
                    *a = SPLIT_IOAPIC_PINS;
                }
                tracing::debug!("KVM_ENABLE_CAP KVM_CAP_SPLIT_IRQCHIP, {SPLIT_IOAPIC_PINS} pins");
                self.vm
                    .enable_cap(&cap)
                    .map_err(LaunchError::kvm("enable the split irqchip"))?;
            }
        }

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
        let devices = Arc::new(Devices::new(opts.serial, irq));
        let control = Arc::clone(&self.control);

        // Every vCPU is created and configured before any runs.
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(LaunchError::kvm("read the supported CPUID"))?;
        let mut vcpus = Vec::new();
        for id in 0..plan.vcpu_count {
            tracing::debug!("KVM_CREATE_VCPU {id}, KVM_SET_CPUID2, initial registers");
            let fd = self
                .vm
                .create_vcpu(u64::from(id))
                .map_err(LaunchError::kvm("create a vCPU"))?;
            fd.set_cpuid2(&vcpu::cpuid_for(&supported, id)?)
                .map_err(LaunchError::kvm("set a vCPU's CPUID"))?;
            if let Some(state) = usize::try_from(id).ok().and_then(|i| plan.vcpus.get(i)) {
                vcpu::set_state(&fd, state)?;
            }
            vcpus.push(fd);
        }

        let wait = Waiter::new(&control)?;
        register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| LaunchError::Step("install the vCPU kick handler", e.to_string()))?;
        let start = Instant::now();
        tracing::info!(
            "starting {} vCPU{} ({:?} irqchip{})",
            plan.vcpu_count,
            if plan.vcpu_count == 1 { "" } else { "s" },
            opts.irqchip,
            if opts.pit { ", PIT" } else { "" }
        );
        for (id, fd) in (0u32..).zip(vcpus) {
            let (d, c) = (Arc::clone(&devices), Arc::clone(&control));
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || vcpu::run(fd, id, d, c))
                .map_err(|e| LaunchError::Step("start a vCPU thread", e.to_string()))?;
            self.threads.push(t);
        }

        let waited = wait.until_stop(&control, start, opts.timeout);
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
        })
    }

    /// Takes the guest memory out of the VM before the VM fd closes (the vCPU threads have
    /// stopped). Teardown in reverse order is also quicker: creating the in-kernel
    /// irqchip's devices leaves KVM freeing the replaced I/O bus tables after a normal
    /// SRCU grace period, which closing the VM waits for (`srcu_barrier`), while removing
    /// a memory slot waits for an expedited one, which ends the pending period sooner
    /// (with `--pit off`: a 19 ms median launch became 12 ms on the development machine).
    fn remove_memory(&self) {
        for slot in 0..self.memory.num_regions() {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            if let Err(e) = sys::remove_memory_region(&self.vm, slot) {
                tracing::debug!("removing memory slot {slot}: {e}");
            }
        }
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
    ) -> Result<Option<StopReason>, LaunchError> {
        let deadline = timeout.map(|t| start + t);
        let mut events = [EpollEvent::default(); 2];
        loop {
            if control.stopping.load(Ordering::Acquire) {
                return Ok(None); // a vCPU recorded why
            }
            let timeout_ms = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Some(StopReason::Timeout(timeout.unwrap_or_default())));
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

/// Guest memory: the plan's RAM, plus a region for every step outside it (firmware).
fn guest_memory(plan: &LaunchPlan<'_>) -> Result<GuestMemoryMmap<()>, LaunchError> {
    let step = "lay out guest memory";
    let mut ranges: Vec<(u64, u64)> = plan.ram.iter().map(|r| (r.gpa, r.len)).collect();
    for s in &plan.steps {
        let end = s.gpa.saturating_add(s.len);
        let inside = ranges
            .iter()
            .any(|(g, l)| s.gpa >= *g && end <= g.saturating_add(*l));
        if inside {
            continue;
        }
        let overlaps = ranges
            .iter()
            .any(|(g, l)| s.gpa < g.saturating_add(*l) && end > *g);
        if overlaps {
            return Err(LaunchError::Step(
                step,
                format!("{:?} at {:#x} straddles the end of RAM", s.origin, s.gpa),
            ));
        }
        let start = s.gpa & !0xfff;
        let aligned_end = end.saturating_add(0xfff) & !0xfff;
        ranges.push((start, aligned_end.saturating_sub(start)));
    }
    let ranges = ranges
        .into_iter()
        .map(|(g, l)| {
            Ok((
                GuestAddress(g),
                usize::try_from(l).map_err(|e| LaunchError::Step(step, e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>, LaunchError>>()?;
    let total: u64 = plan.ram.iter().map(|r| r.len).sum();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| {
        LaunchError::Step(
            "map guest memory",
            format!("{} MiB of RAM (--memory): {e}", total >> 20),
        )
    })
}

/// Copies the plan's steps into guest memory, in order.
fn load(plan: &LaunchPlan<'_>, memory: &GuestMemoryMmap<()>) -> Result<(), LaunchError> {
    tracing::info!("loading {} plan steps into guest memory", plan.steps.len());
    for s in &plan.steps {
        match s.kind {
            PageKind::Normal => memory
                .write_slice(&s.data, GuestAddress(s.gpa))
                .map_err(|e| {
                    LaunchError::Step(
                        "load the plan into guest memory",
                        format!("{:?} at {:#x}: {e}", s.origin, s.gpa),
                    )
                })?,
            // Fresh anonymous memory is already zero.
            PageKind::Zero => {}
            other => {
                return Err(LaunchError::Step(
                    "load the plan into guest memory",
                    format!("{other:?} pages need a confidential backend"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvm_firmware::Tee;
    use cvm_firmware::plan::{Origin, RamRange, Step};
    use std::borrow::Cow;

    fn opts() -> RunOptions {
        RunOptions {
            serial: Box::new(std::io::sink()),
            timeout: Some(Duration::from_secs(5)),
            irqchip: IrqChip::InKernel,
            pit: false,
        }
    }

    fn plan_with(kind: PageKind, gpa: u64) -> LaunchPlan<'static> {
        LaunchPlan {
            tee: Tee::None,
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
            sev_features: 0,
            kernel_hashes: None,
            fw_cfg: Vec::new(),
        }
    }

    #[test]
    fn a_failing_step_is_named_and_the_launch_returns() {
        if std::fs::metadata("/dev/kvm").is_err() {
            eprintln!("SKIPPED: no /dev/kvm");
            return;
        }
        // The none backend cannot load SNP secrets pages: the load step fails, after the
        // VM and its memory exist, and everything is released.
        let err = run(&plan_with(PageKind::Secrets, 0x1000), opts()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("load the plan into guest memory"),
            "{err}"
        );
        // A step that straddles the end of RAM is refused before any mapping.
        let err = run(&plan_with(PageKind::Normal, (2 << 20) - 2048), opts()).unwrap_err();
        assert!(
            err.to_string().contains("straddles the end of RAM"),
            "{err}"
        );
    }
}
