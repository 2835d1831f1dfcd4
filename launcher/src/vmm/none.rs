//! The `none` backend: a plain, unprotected KVM guest (development only). The plan's
//! contents are copied into guest memory as they are; nothing is measured, and the
//! hardware enforces nothing.

use super::backend::{Backend, ExitHandled, Hardware, PlatformOptions, Runtime, VmType};
use super::{IDENTITY_MAP_ADDR, LaunchError, TSS_ADDR};
use cvm_firmware::Tee;
use cvm_firmware::plan::{LaunchPlan, PageKind, Step};
use cvm_firmware::vcpu::VcpuState;
use kvm_ioctls::VcpuExit;

/// The `none` backend.
#[derive(Debug, Default)]
pub struct NoneBackend;

impl Backend for NoneBackend {
    fn tee(&self) -> Tee {
        Tee::None
    }

    fn create_vm(
        &mut self,
        hw: &mut dyn Hardware,
        opts: &PlatformOptions,
    ) -> Result<(), LaunchError> {
        hw.create_vm(VmType::DEFAULT)?;
        hw.set_system_addresses(TSS_ADDR, IDENTITY_MAP_ADDR)?;
        hw.create_irqchip(opts.irqchip, opts.pit)
    }

    fn prepare_memory(
        &mut self,
        hw: &mut dyn Hardware,
        plan: &LaunchPlan<'_>,
    ) -> Result<(), LaunchError> {
        hw.add_memory(&memory_ranges(plan)?)
    }

    fn load(&mut self, hw: &mut dyn Hardware, step: &Step<'_>) -> Result<(), LaunchError> {
        match step.kind {
            PageKind::Normal => hw.write_memory(step.gpa, &step.data),
            PageKind::Zero => hw.zero_memory(step.gpa, step.len),
            other => Err(LaunchError::Unsupported {
                tee: Tee::None,
                what: format!(
                    "{} pages ({:?} at {:#x}): only a confidential backend loads them",
                    other.name(),
                    step.origin,
                    step.gpa
                ),
            }),
        }
    }

    fn setup_vcpu(
        &mut self,
        hw: &mut dyn Hardware,
        id: u32,
        state: Option<&VcpuState>,
    ) -> Result<(), LaunchError> {
        hw.create_vcpu(id)?;
        match state {
            Some(s) => hw.set_vcpu_state(id, s),
            // An application processor waits for a start-up IPI in KVM's reset state.
            None => Ok(()),
        }
    }

    fn finalize(&mut self, _: &mut dyn Hardware) -> Result<(), LaunchError> {
        Ok(())
    }

    fn handle_exit(&self, _: u32, _: &mut VcpuExit<'_>, _: &dyn Runtime) -> ExitHandled {
        ExitHandled::NotMine
    }
}

/// Guest memory for `plan`: its RAM, plus a page-aligned range for every step outside
/// it (firmware below 4 GiB). A step that straddles the end of RAM is refused.
pub fn memory_ranges(plan: &LaunchPlan<'_>) -> Result<Vec<(u64, u64)>, LaunchError> {
    let step_name = "lay out guest memory";
    let mut ranges: Vec<(u64, u64)> = plan.ram.iter().map(|r| (r.gpa, r.len)).collect();
    for s in &plan.steps {
        let end = s.gpa.checked_add(s.len).ok_or_else(|| {
            LaunchError::Step(step_name, format!("{:?} at {:#x} wraps", s.origin, s.gpa))
        })?;
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
                step_name,
                format!("{:?} at {:#x} straddles the end of RAM", s.origin, s.gpa),
            ));
        }
        let start = s.gpa & !0xfff;
        let aligned_end = end.saturating_add(0xfff) & !0xfff;
        ranges.push((start, aligned_end.saturating_sub(start)));
    }
    Ok(ranges)
}
