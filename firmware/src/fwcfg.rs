//! QEMU's fw_cfg contents, as a launch plan carries them: the items the VMM serves and
//! the firmware reads (QEMU `hw/nvram/fw_cfg.c`, `docs/specs/fw_cfg.rst`, x86 content
//! from `hw/i386/fw_cfg.c` and `hw/i386/x86-common.c` `x86_load_linux`; ../shared/FWCFG.md
//! section 1). The device that serves them is the launcher's; what it serves is this.

use crate::bzimage::{self, BzImage};
use crate::error::{FirmwareError, Result};
use crate::plan::{FwCfgFile, RamRange};
use std::borrow::Cow;

/// The well-known keys (`include/standard-headers/linux/qemu_fw_cfg.h`).
pub mod key {
    /// `"QEMU"`.
    pub const SIGNATURE: u16 = 0x00;
    /// The feature word: bit 0 traditional interface, bit 1 DMA.
    pub const ID: u16 = 0x01;
    /// The boot vCPU count (u16 LE).
    pub const NB_CPUS: u16 = 0x05;
    /// Whether the firmware shows a boot menu (u16 LE).
    pub const BOOT_MENU: u16 = 0x0e;
    /// Where the protected-mode kernel goes (u32 LE).
    pub const KERNEL_ADDR: u16 = 0x07;
    /// Its size (u32 LE).
    pub const KERNEL_SIZE: u16 = 0x08;
    /// Where the initrd goes (u32 LE).
    pub const INITRD_ADDR: u16 = 0x0a;
    /// Its size (u32 LE).
    pub const INITRD_SIZE: u16 = 0x0b;
    /// The protected-mode kernel.
    pub const KERNEL_DATA: u16 = 0x11;
    /// The initrd.
    pub const INITRD_DATA: u16 = 0x12;
    /// Where the command line goes (u32 LE).
    pub const CMDLINE_ADDR: u16 = 0x13;
    /// Its size with the NUL (u32 LE).
    pub const CMDLINE_SIZE: u16 = 0x14;
    /// The command line with its NUL.
    pub const CMDLINE_DATA: u16 = 0x15;
    /// Where the real-mode setup goes (u32 LE).
    pub const SETUP_ADDR: u16 = 0x16;
    /// Its size (u32 LE).
    pub const SETUP_SIZE: u16 = 0x17;
    /// The real-mode setup (with QEMU's header changes outside confidential guests).
    pub const SETUP_DATA: u16 = 0x18;
    /// The file directory.
    pub const FILE_DIR: u16 = 0x19;
    /// The first file's selector (files follow in name order).
    pub const FIRST_FILE: u16 = 0x20;
}

/// The feature word cvm serves: the traditional interface and DMA.
pub const FEATURES: u32 = 0x3;
/// File slots in the directory (QEMU's default `x-file-slots`, 0x20).
pub const FILE_SLOTS: usize = 0x20;
/// A directory entry: u32 size BE, u16 select BE, u16 reserved, name[56].
const DIR_ENTRY: usize = 64;
/// A file name's room, NUL included.
const NAME_LEN: usize = 56;
/// Where QEMU puts the parts of a bzImage (boot protocol 2.02+, LOADED_HIGH).
const REAL_ADDR: u32 = 0x1_0000;
const CMDLINE_ADDR: u32 = 0x2_0000;
const PROT_ADDR: u32 = 0x10_0000;
/// The whole kernel file, as QEMU 9.2+ serves it beside the traditional items.
pub const ETC_BOOT_KERNEL: &str = "etc/boot/kernel";
/// QEMU's `etc/e820` entry type for RAM.
const E820_RAM: u32 = 1;
/// Its type for reserved ranges.
const E820_RESERVED: u32 = 2;
/// What KVM takes from guest-physical space for a VM that is not a TD: the identity-map
/// page at 0xfeffc000 and the real-mode TSS (three pages) after it. QEMU reserves the
/// range in `etc/e820`, ahead of the RAM entries (`target/i386/kvm/kvm.c`
/// kvm_arch_init: `e820_add_entry(identity_base, 0x4000, E820_RESERVED)`), and cvm puts
/// KVM's pages at the same addresses (`KVM_SET_IDENTITY_MAP_ADDR`, `KVM_SET_TSS_ADDR`).
pub const KVM_RESERVED: RamRange = RamRange {
    gpa: 0xfeff_c000,
    len: 0x4000,
};

/// What a launch serves through fw_cfg: numbered items and named files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FwCfg<'a> {
    /// Items by key (the well-known ones below 0x20; not the signature, ID or directory,
    /// which follow from the rest).
    pub items: Vec<(u16, Cow<'a, [u8]>)>,
    /// Files, served from selector 0x20 on in name order.
    pub files: Vec<FwCfgFile<'a>>,
}

fn u32_le(v: u32) -> Cow<'static, [u8]> {
    Cow::Owned(v.to_le_bytes().to_vec())
}

fn len32(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        FirmwareError::Unsupported(format!(
            "a {n}-byte {what} does not fit fw_cfg's 32-bit size"
        ))
    })
}

impl<'a> FwCfg<'a> {
    /// The items QEMU serves for a direct Linux boot of the bzImage `kernel` with
    /// `initrd` and `cmdline` (`x86_load_linux`): the setup and protected-mode parts at
    /// `setup_size = (setup_sects + 1) * 512`, their addresses and sizes, the command line
    /// with its NUL, the initrd at the highest page below `below_4g - acpi_data_size`, and
    /// the whole file as `etc/boot/kernel`. `patch`: QEMU's setup-header changes, which it
    /// makes only outside confidential guests.
    pub fn linux(
        kernel: &'a [u8],
        initrd: Option<&'a [u8]>,
        cmdline: &str,
        patch: bool,
        below_4g: u64,
        acpi_data_size: u32,
    ) -> Result<Self> {
        let hdr = BzImage::parse(kernel)?;
        let sects = match hdr.setup_sects {
            0 => 4,
            n => u64::from(n),
        };
        // sects ≤ 255: at most 128 KiB.
        let setup_size =
            usize::try_from(sects.saturating_add(1).saturating_mul(512)).unwrap_or(usize::MAX);
        if setup_size >= kernel.len() {
            return Err(FirmwareError::Unsupported(format!(
                "the kernel's {setup_size}-byte setup leaves no protected-mode kernel in its {} bytes",
                kernel.len()
            )));
        }
        let (setup, prot) = kernel.split_at(setup_size);
        let initrd_len = initrd.map_or(0, <[u8]>::len);
        let setup: Cow<'a, [u8]> = if patch {
            let patched = bzimage::qemu_patch(kernel, initrd_len, below_4g, acpi_data_size)?;
            Cow::Owned(patched.get(..setup_size).unwrap_or_default().to_vec())
        } else {
            Cow::Borrowed(setup)
        };
        let mut line = cmdline.as_bytes().to_vec();
        line.push(0);
        let mut items = vec![
            (key::KERNEL_ADDR, u32_le(PROT_ADDR)),
            (key::KERNEL_SIZE, u32_le(len32("kernel", prot.len())?)),
            (key::KERNEL_DATA, Cow::Borrowed(prot)),
            (key::SETUP_ADDR, u32_le(REAL_ADDR)),
            (key::SETUP_SIZE, u32_le(len32("setup", setup_size)?)),
            (key::SETUP_DATA, setup),
            (key::CMDLINE_ADDR, u32_le(CMDLINE_ADDR)),
            (
                key::CMDLINE_SIZE,
                u32_le(len32("command line", line.len())?),
            ),
            (key::CMDLINE_DATA, Cow::Owned(line)),
        ];
        if let Some(initrd) = initrd {
            let addr = bzimage::qemu_initrd_addr(kernel, initrd.len(), below_4g, acpi_data_size)?;
            items.push((key::INITRD_ADDR, u32_le(addr.unwrap_or(0))));
            items.push((key::INITRD_SIZE, u32_le(len32("initrd", initrd.len())?)));
            items.push((key::INITRD_DATA, Cow::Borrowed(initrd)));
        }
        Ok(FwCfg {
            items,
            files: vec![FwCfgFile {
                name: ETC_BOOT_KERNEL,
                data: Cow::Borrowed(kernel),
            }],
        })
    }

    /// Adds `etc/e820` for `ram` (QEMU's table: 20-byte LE entries {base, length, type}),
    /// after the [`KVM_RESERVED`] entry where `kvm_reserved` (every VM but a TD's).
    pub fn with_e820(mut self, ram: &[RamRange], kvm_reserved: bool) -> Self {
        let mut table = Vec::with_capacity(ram.len().saturating_add(1).saturating_mul(20));
        let reserved = kvm_reserved.then_some((&KVM_RESERVED, E820_RESERVED));
        for (r, kind) in reserved
            .into_iter()
            .chain(ram.iter().map(|r| (r, E820_RAM)))
        {
            table.extend_from_slice(&r.gpa.to_le_bytes());
            table.extend_from_slice(&r.len.to_le_bytes());
            table.extend_from_slice(&kind.to_le_bytes());
        }
        self.files.push(FwCfgFile {
            name: "etc/e820",
            data: Cow::Owned(table),
        });
        self
    }

    /// Adds QEMU's three ACPI files for the tables blob `tables` (`etc/acpi/tables`):
    /// `etc/acpi/rsdp` and `etc/table-loader` as QEMU's `acpi_build` makes them
    /// ([`crate::tdx::acpi::Tables::derive`]).
    pub fn with_acpi(mut self, tables: Cow<'a, [u8]>) -> Result<Self> {
        use crate::tdx::{acpi::Tables, fw_cfg};
        let built = Tables::derive(&tables)?;
        self.files.push(FwCfgFile {
            name: fw_cfg::TABLE_LOADER,
            data: Cow::Owned(built.loader),
        });
        self.files.push(FwCfgFile {
            name: fw_cfg::RSDP,
            data: Cow::Owned(built.rsdp.to_vec()),
        });
        self.files.push(FwCfgFile {
            name: fw_cfg::ACPI_TABLES,
            data: tables,
        });
        Ok(self)
    }

    /// Adds the boot vCPU count (key 0x05).
    pub fn with_cpus(mut self, vcpus: u32) -> Self {
        let n = u16::try_from(vcpus).unwrap_or(u16::MAX);
        self.items
            .push((key::NB_CPUS, Cow::Owned(n.to_le_bytes().to_vec())));
        self
    }

    /// The item `key`, as the plan sets it (not the signature, ID or directory).
    pub fn item(&self, key: u16) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The file `name`.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.data.as_ref())
    }

    /// Drops the file `name`, if the plan serves it.
    pub fn without_file(mut self, name: &str) -> Self {
        self.files.retain(|f| f.name != name);
        self
    }

    /// The files OVMF's kernel loader file system makes of these items (edk2
    /// `OvmfPkg/QemuKernelLoaderFsDxe/QemuKernelLoaderFsDxe.c`, since edk2-stable202502):
    /// every `etc/boot/NAME` file first, then the traditional blobs for names not yet
    /// found: `kernel` = SETUP_DATA ‖ KERNEL_DATA (sizes from keys 0x17 and 0x08),
    /// `initrd` = INITRD_DATA, `cmdline` = CMDLINE_DATA (with its NUL). A blob whose size
    /// is zero is absent. This is what the firmware verifies (SEV hashes) or measures
    /// (TDVF), so it is what `cvm measure` folds.
    pub fn loader_blob(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let named = format!("etc/boot/{name}");
        if let Some(data) = self.file(&named) {
            return (!data.is_empty()).then_some(Cow::Borrowed(data));
        }
        let sized = |size: u16, data: u16| {
            let n = self.item(size)?;
            let n = usize::try_from(u32::from_le_bytes(n.try_into().ok()?)).ok()?;
            self.item(data).map(|d| d.get(..n).unwrap_or(d))
        };
        let blob: Cow<'_, [u8]> = match name {
            "kernel" => {
                let setup = sized(key::SETUP_SIZE, key::SETUP_DATA).unwrap_or_default();
                let kernel = sized(key::KERNEL_SIZE, key::KERNEL_DATA)?;
                Cow::Owned([setup, kernel].concat())
            }
            "initrd" => Cow::Borrowed(sized(key::INITRD_SIZE, key::INITRD_DATA)?),
            "cmdline" => Cow::Borrowed(sized(key::CMDLINE_SIZE, key::CMDLINE_DATA)?),
            _ => return None,
        };
        (!blob.is_empty()).then_some(blob)
    }

    /// Whether the launch serves anything.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.files.is_empty()
    }

    /// Every item as the device serves it, by key: the signature, the feature word, the
    /// file directory (`u32 count` BE, then [`FILE_SLOTS`] or more 64-byte entries, names
    /// sorted by their bytes as QEMU's `strcmp` insertion sort orders them), the items, and
    /// the files at their selectors. Refuses duplicate keys or names (QEMU aborts) and
    /// names that do not fit 55 bytes.
    pub fn contents(&self) -> Result<Vec<(u16, Cow<'_, [u8]>)>> {
        let mut files: Vec<&FwCfgFile<'a>> = self.files.iter().collect();
        files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        if let Some(w) = files
            .windows(2)
            .find(|w| w.first().map(|f| f.name) == w.get(1).map(|f| f.name))
        {
            return Err(FirmwareError::Unsupported(format!(
                "fw_cfg file {} twice",
                w.first().map_or("", |f| f.name)
            )));
        }
        let slots = files.len().max(FILE_SLOTS);
        let dir_len = DIR_ENTRY.saturating_mul(slots).saturating_add(4);
        let mut dir = Vec::with_capacity(dir_len);
        dir.extend_from_slice(&len32("directory", files.len())?.to_be_bytes());
        let mut out: Vec<(u16, Cow<'_, [u8]>)> = vec![
            (key::SIGNATURE, Cow::Borrowed(b"QEMU")),
            (key::ID, Cow::Owned(FEATURES.to_le_bytes().to_vec())),
        ];
        for (i, f) in files.iter().enumerate() {
            let select = u16::try_from(i)
                .ok()
                .and_then(|i| key::FIRST_FILE.checked_add(i))
                .filter(|k| *k < 0x4000)
                .ok_or_else(|| FirmwareError::Unsupported("too many fw_cfg files".into()))?;
            if f.name.len() >= NAME_LEN {
                return Err(FirmwareError::Unsupported(format!(
                    "fw_cfg file name {:?} is longer than {} bytes",
                    f.name,
                    NAME_LEN - 1
                )));
            }
            dir.extend_from_slice(&len32(f.name, f.data.len())?.to_be_bytes());
            dir.extend_from_slice(&select.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut name = [0u8; NAME_LEN];
            name.get_mut(..f.name.len())
                .unwrap_or_default()
                .copy_from_slice(f.name.as_bytes());
            dir.extend_from_slice(&name);
            out.push((select, Cow::Borrowed(&f.data[..])));
        }
        dir.resize(dir_len, 0);
        out.push((key::FILE_DIR, Cow::Owned(dir)));
        for (k, v) in &self.items {
            if matches!(*k, key::SIGNATURE | key::ID | key::FILE_DIR)
                || *k >= key::FIRST_FILE && *k < 0x8000
            {
                return Err(FirmwareError::Unsupported(format!(
                    "fw_cfg item {k:#x} is not an item a plan sets"
                )));
            }
            if out.iter().any(|(o, _)| o == k) {
                return Err(FirmwareError::Unsupported(format!(
                    "fw_cfg item {k:#x} twice"
                )));
            }
            out.push((*k, Cow::Borrowed(&v[..])));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use crate::bzimage::tests::fake_bzimage;

    fn item<'c>(c: &'c [(u16, Cow<'_, [u8]>)], k: u16) -> &'c [u8] {
        &c.iter().find(|(key, _)| *key == k).unwrap().1
    }

    #[test]
    fn a_bzimage_is_split_as_qemu_splits_it() {
        let k = fake_bzimage(64 << 10);
        let setup_sects = usize::from(k[0x1f1]);
        let setup = (if setup_sects == 0 { 4 } else { setup_sects } + 1) * 512;
        let initrd = vec![7u8; 5000];
        let cfg = FwCfg::linux(
            &k,
            Some(&initrd),
            "console=ttyS0",
            false,
            128 << 20,
            0x2_8000,
        )
        .unwrap()
        .with_cpus(3);
        let c = cfg.contents().unwrap();
        assert_eq!(item(&c, key::SIGNATURE), b"QEMU");
        assert_eq!(item(&c, key::ID), &3u32.to_le_bytes());
        assert_eq!(item(&c, key::SETUP_DATA), &k[..setup]);
        assert_eq!(item(&c, key::KERNEL_DATA), &k[setup..]);
        assert_eq!(
            item(&c, key::KERNEL_SIZE),
            &u32::try_from(k.len() - setup).unwrap().to_le_bytes()
        );
        assert_eq!(item(&c, key::CMDLINE_DATA), b"console=ttyS0\0");
        assert_eq!(item(&c, key::CMDLINE_SIZE), &14u32.to_le_bytes());
        assert_eq!(item(&c, key::INITRD_DATA), &initrd[..]);
        assert_eq!(item(&c, key::NB_CPUS), &3u16.to_le_bytes());
        // The initrd's page, below 128 MiB - the ACPI data, 4 KiB aligned.
        let addr = u32::from_le_bytes(item(&c, key::INITRD_ADDR).try_into().unwrap());
        assert_eq!(addr % 4096, 0);
        assert!(u64::from(addr) + 5000 < (128 << 20) - 0x2_8000);
        // The directory: one file, etc/boot/kernel, the whole file, at 0x20.
        let dir = item(&c, key::FILE_DIR);
        assert_eq!(dir.len(), 4 + 64 * FILE_SLOTS);
        assert_eq!(&dir[..4], &1u32.to_be_bytes());
        assert_eq!(&dir[4..8], &u32::try_from(k.len()).unwrap().to_be_bytes());
        assert_eq!(&dir[8..10], &0x20u16.to_be_bytes());
        assert_eq!(&dir[12..12 + 16], b"etc/boot/kernel\0");
        assert_eq!(item(&c, 0x20), &k[..]);
        // Outside confidential guests QEMU patches the setup header: type_of_loader 0xb0.
        let patched = FwCfg::linux(&k, Some(&initrd), "", true, 128 << 20, 0x2_8000).unwrap();
        let pc = patched.contents().unwrap();
        assert_eq!(item(&pc, key::SETUP_DATA)[0x210], 0xb0);
        assert_eq!(item(&pc, key::CMDLINE_DATA), b"\0");
        assert_eq!(
            item(&pc, key::KERNEL_DATA),
            &k[setup..],
            "only the setup is patched"
        );
    }

    #[test]
    fn files_are_numbered_in_name_order_and_e820_is_qemus() {
        let cfg = FwCfg {
            items: Vec::new(),
            files: vec![
                FwCfgFile {
                    name: "etc/zz",
                    data: Cow::Borrowed(b"z"),
                },
                FwCfgFile {
                    name: "bootorder",
                    data: Cow::Borrowed(b"\0"),
                },
            ],
        }
        .with_e820(
            &[
                RamRange {
                    gpa: 0,
                    len: 0x8000_0000,
                },
                RamRange {
                    gpa: 1 << 32,
                    len: 1 << 30,
                },
            ],
            true,
        );
        let c = cfg.contents().unwrap();
        let dir = item(&c, key::FILE_DIR);
        let name = |i: usize| {
            let e = &dir[4 + 64 * i..4 + 64 * (i + 1)];
            (
                u16::from_be_bytes([e[4], e[5]]),
                String::from_utf8(e[8..].iter().take_while(|b| **b != 0).copied().collect())
                    .unwrap(),
            )
        };
        assert_eq!(name(0), (0x20, "bootorder".into()));
        assert_eq!(name(1), (0x21, "etc/e820".into()));
        assert_eq!(name(2), (0x22, "etc/zz".into()));
        // KVM's pages first, reserved, as QEMU lists them; then the RAM.
        let e820 = item(&c, 0x21);
        assert_eq!(e820.len(), 60);
        assert_eq!(&e820[..8], &0xfeff_c000u64.to_le_bytes());
        assert_eq!(&e820[8..16], &0x4000u64.to_le_bytes());
        assert_eq!(&e820[16..20], &2u32.to_le_bytes());
        assert_eq!(&e820[20..28], &0u64.to_le_bytes());
        assert_eq!(&e820[28..36], &0x8000_0000u64.to_le_bytes());
        assert_eq!(&e820[36..40], &1u32.to_le_bytes());
        assert_eq!(&e820[40..48], &(1u64 << 32).to_le_bytes());
        let twice = FwCfg {
            items: Vec::new(),
            files: vec![
                FwCfgFile {
                    name: "a",
                    data: Cow::Borrowed(b"1"),
                },
                FwCfgFile {
                    name: "a",
                    data: Cow::Borrowed(b"2"),
                },
            ],
        };
        assert!(twice.contents().is_err());
        let long = FwCfg {
            items: Vec::new(),
            files: vec![FwCfgFile {
                name: "x123456789x123456789x123456789x123456789x123456789xxxxxx",
                data: Cow::Borrowed(b""),
            }],
        };
        assert!(long.contents().is_err());
    }

    #[test]
    fn the_loader_reads_named_blobs_first_and_drops_empty_ones() {
        let k = fake_bzimage(64 << 10);
        let cfg = FwCfg::linux(&k, Some(&[]), "x", true, 128 << 20, 0x2_8000).unwrap();
        // QEMU 9.2+: etc/boot/kernel, the file as built, not the patched setup.
        assert_eq!(cfg.loader_blob("kernel").unwrap(), &k[..]);
        // Without it: SETUP_DATA ‖ KERNEL_DATA, here with QEMU's header patch.
        let old = cfg.clone().without_file(ETC_BOOT_KERNEL);
        let kernel = old.loader_blob("kernel").unwrap();
        assert_eq!(kernel.len(), k.len());
        assert_eq!(kernel[0x210], 0xb0);
        assert_eq!(&kernel[0x1000..], &k[0x1000..]);
        // An empty initrd is no initrd; the command line keeps its NUL.
        assert!(cfg.loader_blob("initrd").is_none());
        assert_eq!(&cfg.loader_blob("cmdline").unwrap()[..], b"x\0");
        assert!(cfg.loader_blob("shim").is_none());
        assert!(FwCfg::default().loader_blob("kernel").is_none());
    }
}
