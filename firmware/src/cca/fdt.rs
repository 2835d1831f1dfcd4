//! Device-tree blobs of realm VMs, written with rust-vmm's `vm-fdt` (the writer the
//! VMM layouts of [`super::layout`] were checked with): the nodes every layout shares.

use vm_fdt::{FdtWriter, FdtWriterNode};

/// A DTB writer error.
pub type Result<T> = core::result::Result<T, vm_fdt::Error>;

/// GIC interrupt types and flags (Linux's arm-gic bindings).
pub const IRQ_SPI: u32 = 0;
/// A private peripheral interrupt.
pub const IRQ_PPI: u32 = 1;
/// Rising edge.
pub const IRQ_EDGE_LO_HI: u32 = 1;
/// Active-high level.
pub const IRQ_LEVEL_HI: u32 = 4;
/// Active-low level.
pub const IRQ_LEVEL_LO: u32 = 8;
/// PCI I/O space.
pub const PCI_RANGE_IOPORT: u32 = 0x0100_0000;
/// PCI 32-bit memory space.
pub const PCI_RANGE_MMIO: u32 = 0x0200_0000;
/// PCI 64-bit memory space.
pub const PCI_RANGE_MMIO_64BIT: u32 = 0x0300_0000;

/// Begins `name@<unit address in hex>`.
pub fn begin_at(fdt: &mut FdtWriter, name: &str, unit: u64) -> Result<FdtWriterNode> {
    fdt.begin_node(&format!("{name}@{unit:x}"))
}

/// `memory@BASE`.
pub fn memory(fdt: &mut FdtWriter, base: u64, size: u64) -> Result<()> {
    let n = begin_at(fdt, "memory", base)?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[base, size])?;
    fdt.end_node(n)
}

/// `cpus` with `cpu@N` nodes (PSCI enable method).
pub fn cpus(fdt: &mut FdtWriter, count: u32) -> Result<()> {
    let n = fdt.begin_node("cpus")?;
    fdt.property_u32("#size-cells", 0)?;
    fdt.property_u32("#address-cells", 1)?;
    for i in 0..count {
        let c = fdt.begin_node(&format!("cpu@{i}"))?;
        fdt.property_u32("reg", i)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_string("device_type", "cpu")?;
        fdt.end_node(c)?;
    }
    fdt.end_node(n)
}

/// `psci`: the RMM's PSCI 1.0 through SMC.
pub fn psci(fdt: &mut FdtWriter) -> Result<()> {
    let n = fdt.begin_node("psci")?;
    fdt.property_u32("cpu_on", 0xc400_0003)?;
    fdt.property_u32("cpu_off", 0x8400_0002)?;
    fdt.property_string("method", "smc")?;
    fdt.property_string_list(
        "compatible",
        vec![
            "arm,psci-1.0".into(),
            "arm,psci-0.2".into(),
            "arm,psci".into(),
        ],
    )?;
    fdt.end_node(n)
}

/// `intc@DIST` (GICv3) with its `reg` (distributor, then redistributor regions) and an
/// optional `its@BASE` child.
pub fn gic(
    fdt: &mut FdtWriter,
    reg: &[u64],
    its: Option<[u64; 2]>,
    (gic_phandle, its_phandle): (u32, u32),
) -> Result<()> {
    let n = begin_at(fdt, "intc", reg.first().copied().unwrap_or(0))?;
    fdt.property_phandle(gic_phandle)?;
    fdt.property_array_u64("reg", reg)?;
    let redists = u32::try_from(reg.len().saturating_sub(2) / 2).unwrap_or(0);
    fdt.property_u32("#redistributor-regions", redists)?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_null("ranges")?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    if let Some(r) = its {
        let i = begin_at(fdt, "its", r[0])?;
        fdt.property_phandle(its_phandle)?;
        fdt.property_array_u64("reg", &r)?;
        fdt.property_u32("#msi-cells", 1)?;
        fdt.property_null("msi-controller")?;
        fdt.property_string("compatible", "arm,gic-v3-its")?;
        fdt.end_node(i)?;
    }
    fdt.end_node(n)
}

/// A PCI host bridge's `ranges`: I/O at `io` (PCI address 0), 32-bit memory at `mmio`
/// (identity-mapped), and 64-bit memory at `high` when given (identity-mapped).
pub fn pci_ranges(io: (u64, u64), mmio: (u64, u64), high: Option<(u64, u64)>) -> Vec<u32> {
    let lo = |v: u64| u32::try_from(v & 0xffff_ffff).unwrap_or(0);
    let hi = |v: u64| u32::try_from(v >> 32).unwrap_or(0);
    let mut r = vec![
        PCI_RANGE_IOPORT,
        0,
        0,
        0,
        lo(io.0),
        0,
        lo(io.1),
        PCI_RANGE_MMIO,
        0,
        lo(mmio.0),
        0,
        lo(mmio.0),
        0,
        lo(mmio.1),
    ];
    if let Some((base, size)) = high {
        r.extend([
            PCI_RANGE_MMIO_64BIT,
            hi(base),
            lo(base),
            hi(base),
            lo(base),
            hi(size),
            lo(size),
        ]);
    }
    r
}

/// The properties QEMU and cloud-hypervisor end an ECAM host bridge with (after its
/// `msi-map`), for buses `0..=last_bus`.
pub fn ecam_tail(fdt: &mut FdtWriter, last_bus: u32) -> Result<()> {
    fdt.property_null("dma-coherent")?;
    fdt.property_array_u32("bus-range", &[0, last_bus])?;
    fdt.property_u32("linux,pci-domain", 0)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("#address-cells", 3)?;
    fdt.property_string("device_type", "pci")?;
    fdt.property_string("compatible", "pci-host-ecam-generic")
}

/// `pl031@BASE`, the PrimeCell RTC, clocked by `clock`, on SPI `spi`.
pub fn pl031(fdt: &mut FdtWriter, (base, size): (u64, u64), clock: u32, spi: u32) -> Result<()> {
    let n = begin_at(fdt, "pl031", base)?;
    fdt.property_string("clock-names", "apb_pclk")?;
    fdt.property_array_u64("reg", &[base, size])?;
    fdt.property_u32("clocks", clock)?;
    fdt.property_array_u32("interrupts", &[IRQ_SPI, spi, IRQ_LEVEL_HI])?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,pl031".into(), "arm,primecell".into()],
    )?;
    fdt.end_node(n)
}

/// `apb-pclk`, the 24 MHz fixed clock the PrimeCells run on.
pub fn fixed_clock(fdt: &mut FdtWriter, phandle: u32) -> Result<()> {
    let n = fdt.begin_node("apb-pclk")?;
    fdt.property_phandle(phandle)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_u32("clock-frequency", 24_000_000)?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.end_node(n)
}

/// `timer` with the PPIs `irqs`.
pub fn timer(fdt: &mut FdtWriter, irqs: &[u32], trigger: u32) -> Result<()> {
    let n = fdt.begin_node("timer")?;
    let cells: Vec<u32> = irqs.iter().flat_map(|i| [IRQ_PPI, *i, trigger]).collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,armv8-timer".into(), "arm,armv7-timer".into()],
    )?;
    fdt.end_node(n)
}

/// `pmu` on PPI `irq`.
pub fn pmu(fdt: &mut FdtWriter, irq: u32) -> Result<()> {
    let n = fdt.begin_node("pmu")?;
    fdt.property_array_u32("interrupts", &[IRQ_PPI, irq, IRQ_LEVEL_HI])?;
    fdt.property_string("compatible", "arm,armv8-pmuv3")?;
    fdt.end_node(n)
}

/// A new tree: the root node (still open) with `chosen`, `memory`, `cpus` and `psci`.
pub fn start(
    mem: (u64, u64),
    cpu_count: u32,
    intc_phandle: u32,
    bootargs: Option<&str>,
    initrd: Option<(u64, u64)>,
) -> Result<(FdtWriter, FdtWriterNode)> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", "linux,dummy-virt-realm")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", intc_phandle)?;
    let chosen = fdt.begin_node("chosen")?;
    if let Some(b) = bootargs {
        fdt.property_string("bootargs", b)?;
    }
    if let Some((start, size)) = initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", start.saturating_add(size))?;
    }
    fdt.end_node(chosen)?;
    memory(&mut fdt, mem.0, mem.1)?;
    cpus(&mut fdt, cpu_count)?;
    psci(&mut fdt)?;
    Ok((fdt, root))
}
