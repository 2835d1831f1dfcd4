#![allow(
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    reason = "test images are a few KiB: their sizes fit every integer type"
)]

use super::*;
use crate::guid::known;
use crate::measure::tdx as m;
use crate::ovmf::tests::image_with_table;
use sha2::{Digest, Sha384};

const SIZE: usize = 0x1_0000;
const DESC: usize = 0x4000;

/// (DataOffset, RawSize, MemAddress, MemSize, Type, Attributes)
type Sec = (u32, u32, u64, u64, u32, u32);

/// The sections of a small TDVF image: CFV (image 0..0x4000), BFV (image 0x8000..),
/// TEMP_MEM, TD_HOB, like the layout of the Debian images.
const SECTIONS: [Sec; 4] = [
    (0x8000, 0x8000, 0xffff_8000, 0x8000, 0, ATTR_MR_EXTEND),
    (0, 0x4000, 0xffff_0000, 0x4000, 1, 0),
    (0, 0, 0x80_0000, 0x6000, 3, 0),
    (0, 0, 0x80_9000, 0x2000, 2, 0),
];

fn image(sections: &[Sec]) -> Vec<u8> {
    let mut desc = Vec::new();
    desc.extend_from_slice(b"TDVF");
    desc.extend_from_slice(&(16 + 32 * sections.len() as u32).to_le_bytes());
    desc.extend_from_slice(&1u32.to_le_bytes());
    desc.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for &(off, raw, addr, size, ty, attr) in sections {
        desc.extend_from_slice(&off.to_le_bytes());
        desc.extend_from_slice(&raw.to_le_bytes());
        desc.extend_from_slice(&addr.to_le_bytes());
        desc.extend_from_slice(&size.to_le_bytes());
        desc.extend_from_slice(&ty.to_le_bytes());
        desc.extend_from_slice(&attr.to_le_bytes());
    }
    let mut img = image_with_table(
        SIZE,
        &[(
            known::TDX_METADATA_OFFSET,
            ((SIZE - DESC) as u32).to_le_bytes().to_vec(),
        )],
        &[(DESC, &desc)],
    );
    // Recognisable firmware volume contents.
    for (i, b) in img[0x8000..0xf000].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    img
}

fn cfg<'a>(fw: &'a OvmfImage<'a>, memory: u64) -> TdxConfig<'a> {
    TdxConfig {
        firmware: fw,
        memory,
        vcpus: 1,
        order: AddOrder::SinglePass,
        direct_boot: None,
        acpi_tables: None,
        recipe: None,
    }
}

fn plan_err(sections: &[Sec], memory: u64) -> String {
    let img = image(sections);
    let fw = OvmfImage::parse(&img).unwrap();
    plan(&cfg(&fw, memory)).unwrap_err().to_string()
}

/// MRTD written out from the TDX module's definition, independently of the fold.
fn mrtd_by_hand(img: &[u8], two_pass: bool) -> [u8; 48] {
    let rec = |h: &mut Sha384, tag: &[u8], gpa: u64| {
        let mut b = [0u8; 128];
        b[..tag.len()].copy_from_slice(tag);
        b[16..24].copy_from_slice(&gpa.to_le_bytes());
        h.update(b);
    };
    let mut h = Sha384::new();
    for &(off, _, addr, size, _, attr) in &SECTIONS {
        let pages: Vec<u64> = (0..size / 4096).collect();
        let extend = |h: &mut Sha384, p: u64| {
            for c in 0..16u64 {
                rec(h, b"MR.EXTEND", addr + p * 4096 + c * 256);
                let at = off as usize + (p * 4096 + c * 256) as usize;
                h.update(&img[at..at + 256]);
            }
        };
        if attr & ATTR_MR_EXTEND != 0 && two_pass {
            pages
                .iter()
                .for_each(|&p| rec(&mut h, b"MEM.PAGE.ADD", addr + p * 4096));
            pages.iter().for_each(|&p| extend(&mut h, p));
        } else {
            for &p in &pages {
                rec(&mut h, b"MEM.PAGE.ADD", addr + p * 4096);
                if attr & ATTR_MR_EXTEND != 0 {
                    extend(&mut h, p);
                }
            }
        }
    }
    h.finalize().into()
}

#[test]
fn plan_follows_the_descriptor_and_mrtd_is_its_fold() {
    let img = image(&SECTIONS);
    let fw = OvmfImage::parse(&img).unwrap();
    let single = plan(&cfg(&fw, 64 << 20)).unwrap();
    let kinds: Vec<_> = single.steps.iter().map(|s| (s.gpa, s.kind)).collect();
    assert_eq!(
        kinds,
        [
            (0xffff_8000, PageKind::Normal),
            (0xffff_0000, PageKind::Added),
            (0x80_0000, PageKind::Added),
            (0x80_9000, PageKind::Added),
        ]
    );
    assert_eq!(&single.steps[0].data[..], &img[0x8000..0x1_0000]);
    assert_eq!(&single.steps[1].data[..], &img[..0x4000]);
    assert!(single.steps[2].data.is_empty());
    assert_eq!(m::mrtd(&single).unwrap(), mrtd_by_hand(&img, false));

    let mut c = cfg(&fw, 64 << 20);
    c.order = AddOrder::TwoPass;
    let two = plan(&c).unwrap();
    assert_eq!(two.steps[0].kind, PageKind::Added);
    assert_eq!(two.steps[1].kind, PageKind::Extended);
    assert_eq!(two.steps[1].data, two.steps[0].data);
    assert_eq!(m::mrtd(&two).unwrap(), mrtd_by_hand(&img, true));
    assert_ne!(m::mrtd(&two).unwrap(), m::mrtd(&single).unwrap());
}

/// The resource descriptors of a HOB: (type, start, length).
fn resources(hob: &[u8]) -> Vec<(u32, u64, u64)> {
    let mut out = Vec::new();
    let mut at = 56;
    loop {
        let ty = u16::from_le_bytes(hob[at..at + 2].try_into().unwrap());
        let len = usize::from(u16::from_le_bytes(hob[at + 2..at + 4].try_into().unwrap()));
        if ty == 0xffff {
            assert_eq!(len, 8);
            assert_eq!(at + 8, hob.len());
            return out;
        }
        assert_eq!((ty, len), (3, 48));
        let r = &hob[at..at + 48];
        assert_eq!(u32::from_le_bytes(r[28..32].try_into().unwrap()), 7);
        out.push((
            u32::from_le_bytes(r[24..28].try_into().unwrap()),
            u64::from_le_bytes(r[32..40].try_into().unwrap()),
            u64::from_le_bytes(r[40..48].try_into().unwrap()),
        ));
        at += len;
    }
}

#[test]
fn td_hob_describes_ram_with_the_accepted_sections() {
    let img = image(&SECTIONS);
    let fw = OvmfImage::parse(&img).unwrap();
    let p = plan(&cfg(&fw, 4 << 30)).unwrap();
    let hob = &p.steps[3].data;
    assert_eq!(&hob[..4], &[1, 0, 56, 0]);
    assert_eq!(u32::from_le_bytes(hob[8..12].try_into().unwrap()), 9);
    let end = u64::from_le_bytes(hob[48..56].try_into().unwrap());
    assert_eq!(end, 0x80_9000 + hob.len() as u64);
    assert_eq!(
        resources(hob),
        [
            (7, 0, 0x80_0000),
            (0, 0x80_0000, 0x6000),
            (7, 0x80_6000, 0x3000),
            (0, 0x80_9000, 0x2000),
            (7, 0x80_b000, 0x8000_0000 - 0x80_b000),
            (7, 0x1_0000_0000, 2 << 30),
        ]
    );
    assert_eq!(
        p.ram,
        [
            RamRange {
                gpa: 0,
                len: 2 << 30
            },
            RamRange {
                gpa: 1 << 32,
                len: 2 << 30
            }
        ]
    );
    // Below 2.75 GiB, everything is below 4 GiB.
    let small = plan(&cfg(&fw, 2 << 30)).unwrap();
    let last = *resources(&small.steps[3].data).last().unwrap();
    assert_eq!(last, (7, 0x80_b000, (2 << 30) - 0x80_b000));
}

#[test]
fn bad_descriptors_are_named() {
    let mut s = SECTIONS;
    s[2].2 = 0x80_8000; // TEMP_MEM now runs into the TD HOB
    let e = plan_err(&s, 64 << 20);
    assert!(
        e.contains("section 3") && e.contains("overlaps section 2"),
        "{e}"
    );

    let mut s = SECTIONS;
    s[0].0 = 0xc000; // BFV data past the end of the image
    let e = plan_err(&s, 64 << 20);
    assert!(e.contains("lies outside the 0x10000-byte image"), "{e}");

    let mut s = SECTIONS;
    s[0].5 = ATTR_MR_EXTEND | ATTR_PAGE_AUG;
    assert!(plan_err(&s, 64 << 20).contains("not both"));

    let mut s = SECTIONS;
    s[2].2 = 0x80_0800;
    assert!(plan_err(&s, 64 << 20).contains("4 KiB aligned"));

    let mut s = SECTIONS;
    s[2].4 = 5; // PAYLOAD
    assert!(plan_err(&s, 64 << 20).contains("Payload"));

    let mut s = SECTIONS;
    s[3].4 = 3; // no TD_HOB left
    assert!(plan_err(&s, 64 << 20).contains("0 TD_HOB sections"));

    let mut s = SECTIONS;
    s[2].2 = 0x300_0000; // TEMP_MEM at 48 MiB
    let e = plan_err(&s, 32 << 20);
    assert!(e.contains("give the TD more memory"), "{e}");
    assert!(plan_err(&SECTIONS, 16 << 20).contains("at least 32 MiB"));

    let fw_bytes = image_with_table(SIZE, &[], &[]);
    let fw = OvmfImage::parse(&fw_bytes).unwrap();
    let e = plan(&cfg(&fw, 64 << 20)).unwrap_err().to_string();
    assert!(e.contains("no TDVF descriptor"), "{e}");
}

#[test]
fn a_kernel_without_an_efi_stub_is_refused() {
    let img = image(&SECTIONS);
    let fw = OvmfImage::parse(&img).unwrap();
    let kernel = crate::bzimage::tests::fake_bzimage(0x4000);
    for patch_kernel in [false, true] {
        let mut c = cfg(&fw, 64 << 20);
        c.direct_boot = Some(DirectBoot {
            kernel: &kernel,
            initrd: None,
            cmdline: None,
            patch_kernel,
        });
        let e = plan(&c)
            .and_then(|p| m::measure(&p))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a PE image"), "{e}");
    }
}

#[test]
fn rtmrs_need_their_inputs() {
    let img = image(&SECTIONS);
    let fw = OvmfImage::parse(&img).unwrap();
    let p = plan(&cfg(&fw, 64 << 20)).unwrap();
    let got = m::measure(&p).unwrap();
    assert_eq!(got.rtmr[..3], [None, None, None]);
    assert_eq!(got.rtmr[3], Some([0; 48]));
    assert!(got.events.is_empty());
}

fn acpi_table(sig: &[u8; 4], len: u32) -> Vec<u8> {
    let mut t = vec![0u8; len as usize];
    t[..4].copy_from_slice(sig);
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t
}

#[test]
fn acpi_loader_and_rsdp_follow_the_blob() {
    let mut blob = Vec::new();
    for (sig, len) in [
        (b"FACS", 64),
        (b"DSDT", 100),
        (b"FACP", 244),
        (b"APIC", 120),
    ] {
        blob.extend(acpi_table(sig, len));
    }
    let rsdt_at = blob.len() as u32;
    blob.extend(acpi_table(b"RSDT", 36 + 8));
    blob.resize(0x2000, 0);
    let t = acpi::Tables::derive(&blob).unwrap();
    assert_eq!(t.tables.len(), 5);
    assert_eq!(&t.rsdp[..8], b"RSD PTR ");
    assert_eq!(
        u32::from_le_bytes(t.rsdp[16..20].try_into().unwrap()),
        rsdt_at
    );
    assert_eq!(t.loader.len(), acpi::LOADER_LEN);
    let commands: Vec<u32> = t
        .loader
        .chunks(128)
        .map(|c| u32::from_le_bytes(c[..4].try_into().unwrap()))
        .take_while(|&c| c != 0)
        .collect();
    // allocate x2, DSDT sum, FACP ptr x3, FACP sum, APIC sum, RSDT ptr x2, RSDT sum,
    // RSDP ptr, RSDP sum.
    assert_eq!(commands, [1, 1, 3, 2, 2, 2, 3, 3, 2, 2, 3, 2, 3]);

    let no_facp: Vec<u8> = [acpi_table(b"DSDT", 40), acpi_table(b"RSDT", 36)].concat();
    let e = acpi::Tables::derive(&no_facp).unwrap_err().to_string();
    assert!(e.contains("no FACP table"), "{e}");
    let mut short = acpi_table(b"DSDT", 40);
    short[4..8].copy_from_slice(&400u32.to_le_bytes());
    let e = acpi::Tables::derive(&short).unwrap_err().to_string();
    assert!(
        e.starts_with("ACPI tables: table at offset 0x0 needs 400 bytes"),
        "{e}"
    );
    assert!(acpi::Tables::derive(&[0; 64]).is_err());
}

fn variable(name: &str, guid: &crate::guid::Guid, state: u8, data: &[u8]) -> Vec<u8> {
    let name: Vec<u8> = name
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut v = vec![0u8; 60];
    v[..2].copy_from_slice(&0x55aau16.to_le_bytes());
    v[2] = state;
    v[36..40].copy_from_slice(&(name.len() as u32).to_le_bytes());
    v[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
    v[44..60].copy_from_slice(&guid.to_disk());
    v.extend(name);
    v.extend(data);
    v.resize(v.len().div_ceil(4) * 4, 0xff);
    v
}

#[test]
fn variable_store_keeps_live_variables_only() {
    let mut cfv = vec![0u8; 72];
    cfv[40..44].copy_from_slice(b"_FVH");
    cfv[48..50].copy_from_slice(&72u16.to_le_bytes());
    cfv.extend_from_slice(&varstore::AUTHENTICATED_STORE.to_disk());
    cfv.extend_from_slice(&0x1000u32.to_le_bytes());
    cfv.extend_from_slice(&[0x5a, 0xfe, 0, 0, 0, 0, 0, 0]);
    cfv.extend(variable("PK", &varstore::GLOBAL_VARIABLE, 0x3c, b"old"));
    cfv.extend(variable("PK", &varstore::GLOBAL_VARIABLE, 0x3f, b"new key"));
    cfv.extend(variable(
        "db",
        &varstore::IMAGE_SECURITY_DATABASE,
        0x3f,
        b"d",
    ));
    cfv.resize(72 + 0x1000, 0xff);
    let vars = varstore::variables(&cfv).unwrap();
    let names: Vec<_> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.data.len()))
        .collect();
    assert_eq!(names, [("PK", 7), ("db", 1)]);
    let sb = varstore::secure_boot_variables(&vars);
    let got: Vec<_> = sb.iter().map(|v| (v.name, v.data.clone())).collect();
    assert_eq!(
        got,
        [
            ("SecureBoot", Some(vec![1])),
            ("PK", Some(b"new key".to_vec())),
            ("KEK", None),
            ("db", Some(b"d".to_vec())),
            ("dbx", None),
        ]
    );
    // A truncated variable is an error naming the field.
    let e = varstore::variables(&cfv[..72 + 28 + 70])
        .unwrap_err()
        .to_string();
    assert!(e.contains("variable"), "{e}");
    // Not a variable store: nothing measured from it.
    assert!(varstore::variables(&[0u8; 4096]).unwrap().is_empty());
}
