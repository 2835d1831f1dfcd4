//! The measured plan is the launched plan: launching any plan through the VMM core hands
//! the hardware exactly the plan's steps, in order, and the plan's vCPUs, and nothing
//! else. Checked on a recording hardware side (no KVM needed), for the `none` backend, on
//! the plans cvm really launches (the built-in guest, a firmware image, a kernel with an
//! initrd and many vCPUs) and on many generated plans; the confidential backends' models
//! extend the same test.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_firmware::plan::{LaunchPlan, Origin, PageKind, RamRange, Step, TeePart};
use cvm_firmware::vcpu::{VcpuState, X86Vcpu};
use cvm_firmware::x86::{Boot, PlainConfig};
use cvm_launcher::vmm::backend::{PlatformOptions, VmType};
use cvm_launcher::vmm::none::NoneBackend;
use cvm_launcher::vmm::record::{Op, Recorder};
use cvm_launcher::vmm::{IrqChip, setup};
use std::borrow::Cow;
use std::path::PathBuf;

const PLATFORM: PlatformOptions = PlatformOptions {
    irqchip: IrqChip::Split,
    pit: false,
};

/// What the `none` backend must hand the hardware for `plan`, derived from the plan
/// alone: the VM, its platform, guest memory (checked by [`check_layout`], here a
/// placeholder), one memory operation per step in plan order (its bytes for a normal
/// step, zeroes for a zero step), then every vCPU, with the plan's register state where
/// the plan gives one.
fn expected(plan: &LaunchPlan<'_>) -> Vec<Op> {
    let mut ops = vec![
        Op::CreateVm(VmType::DEFAULT),
        Op::SystemAddresses {
            tss: 0xfeff_d000,
            identity_map: 0xfeff_c000,
        },
        Op::Irqchip {
            irqchip: PLATFORM.irqchip,
            pit: PLATFORM.pit,
        },
        Op::AddMemory(Vec::new()),
    ];
    for s in &plan.steps {
        ops.push(match s.kind {
            PageKind::Normal => Op::Write {
                gpa: s.gpa,
                data: s.data.to_vec(),
            },
            PageKind::Zero => Op::Zero {
                gpa: s.gpa,
                len: s.len,
            },
            other => panic!("a none plan with {other:?} pages"),
        });
    }
    for id in 0..plan.vcpu_count {
        ops.push(Op::CreateVcpu(id));
        if let Some(state) = plan.vcpus.get(id as usize) {
            ops.push(Op::VcpuState(id, Box::new(*state)));
        }
    }
    ops
}

fn launch(plan: &LaunchPlan<'_>) -> Vec<Op> {
    let mut hw = Recorder::default();
    setup(&mut hw, &mut NoneBackend, plan, &PLATFORM).unwrap();
    hw.ops
}

/// The memory handed to the hardware holds the plan's RAM exactly, and every step in one
/// range, with no two ranges overlapping and every range page-aligned.
fn check_layout(what: &str, plan: &LaunchPlan<'_>, ranges: &[(u64, u64)]) {
    for r in &plan.ram {
        assert!(
            ranges.contains(&(r.gpa, r.len)),
            "{what}: RAM {r:?} in {ranges:x?}"
        );
    }
    for s in &plan.steps {
        assert!(
            ranges
                .iter()
                .any(|(g, l)| s.gpa >= *g && s.gpa + s.len <= g + l),
            "{what}: step at {:#x} in no range of {ranges:x?}",
            s.gpa
        );
    }
    for (i, (g, l)) in ranges.iter().enumerate() {
        assert!(
            g % 4096 == 0 && l % 4096 == 0 && *l > 0,
            "{what}: {g:#x}+{l:#x}"
        );
        for (h, m) in &ranges[i + 1..] {
            assert!(g + l <= *h || h + m <= *g, "{what}: {ranges:x?} overlap");
        }
    }
}

fn assert_plan_is_launch(what: &str, plan: &LaunchPlan<'_>) {
    let mut got = launch(plan);
    match got.get_mut(3) {
        Some(Op::AddMemory(ranges)) => {
            check_layout(what, plan, ranges);
            ranges.clear();
        }
        other => panic!("{what}: operation 3 is {other:?}"),
    }
    let want = expected(plan);
    assert_eq!(got.len(), want.len(), "{what}: {} operations", got.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // Compare without printing megabytes of kernel on a mismatch.
        assert!(
            g == w,
            "{what}: operation {i} differs: {:.200}",
            format!("{g:?}")
        );
    }
}

fn payload(name: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("OUT_DIR")).join(format!("{name}.bin"))).unwrap()
}

#[test]
fn the_plans_cvm_launches_reach_the_hardware_as_planned() {
    let builtin = cvm_launcher::guest::BUILTIN_GUEST;
    let reset = payload("reset");
    let initrd: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let plans = [
        (
            "built-in guest",
            PlainConfig {
                boot: Boot::Linux {
                    kernel: builtin,
                    initrd: None,
                    cmdline: "",
                },
                memory: 128 << 20,
                vcpus: 1,
            },
        ),
        (
            "kernel, initrd, command line, 40 vCPUs",
            PlainConfig {
                boot: Boot::Linux {
                    kernel: builtin,
                    initrd: Some(&initrd),
                    cmdline: "console=ttyS0 cvm.exit=3",
                },
                memory: 6 << 30,
                vcpus: 40,
            },
        ),
        (
            "a kernel with more vCPUs than the MP table holds",
            PlainConfig {
                boot: Boot::Linux {
                    kernel: builtin,
                    initrd: None,
                    cmdline: "",
                },
                memory: 64 << 20,
                vcpus: 200,
            },
        ),
        (
            "firmware",
            PlainConfig {
                boot: Boot::Firmware(&reset),
                memory: 16 << 20,
                vcpus: 4,
            },
        ),
    ];
    for (what, cfg) in &plans {
        let plan = cvm_firmware::x86::plan(cfg).unwrap();
        assert_plan_is_launch(what, &plan);
    }
}

/// A small deterministic generator (xorshift64*), so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random plain plan: RAM, steps of both kinds the none backend loads at random pages
/// inside RAM (overlapping or not, in any order), at most one firmware-like step just
/// below 4 GiB, vCPUs with and without a state.
fn random_plan(rng: &mut Rng) -> LaunchPlan<'static> {
    let ram_len = (rng.below(64) + 1) << 20;
    let mut steps = Vec::new();
    let mut firmware = false;
    for _ in 0..rng.below(12) {
        let pages = rng.below(4) + 1;
        let gpa = if !firmware && rng.below(5) == 0 {
            firmware = true;
            (4u64 << 30) - (rng.below(16) + pages) * 4096
        } else {
            rng.below(ram_len / 4096 - pages) * 4096
        };
        let len = pages * 4096 - rng.below(4096) * u64::from(rng.below(2) == 0);
        let normal = rng.below(3) != 0;
        steps.push(Step {
            gpa,
            len,
            kind: if normal {
                PageKind::Normal
            } else {
                PageKind::Zero
            },
            data: Cow::Owned(if normal {
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                Vec::new()
            }),
            origin: Origin::Firmware,
        });
    }
    let vcpu_count = (rng.below(8) + 1) as u32;
    let states = rng.below(u64::from(vcpu_count) + 1) as usize;
    LaunchPlan {
        steps,
        vcpus: (0..states)
            .map(|i| VcpuState::X86(X86Vcpu::reset(0xffff_fff0 - i as u32)))
            .collect(),
        vcpu_count,
        ram: vec![RamRange {
            gpa: 0,
            len: ram_len,
        }],
        fw_cfg: cvm_firmware::fwcfg::FwCfg::default(),
        part: TeePart::None,
    }
}

#[test]
fn any_plan_reaches_the_hardware_step_by_step_in_order() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for i in 0..500 {
        let plan = random_plan(&mut rng);
        assert_plan_is_launch(&format!("generated plan {i}"), &plan);
    }
}

#[test]
fn a_changed_plan_is_seen_by_the_hardware() {
    // The comparison can fail: the launch of one plan is not what another plan expects.
    let mut rng = Rng(7);
    let plan = random_plan(&mut rng);
    let mut other = plan.clone();
    other.vcpu_count += 1;
    let mut got = launch(&plan);
    if let Some(Op::AddMemory(r)) = got.get_mut(3) {
        r.clear();
    }
    assert_eq!(got, expected(&plan));
    assert_ne!(got, expected(&other));
}
