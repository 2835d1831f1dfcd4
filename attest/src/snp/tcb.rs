//! TCB_VERSION (SEV-SNP ABI 1.55 table 3) and AMD product generations.

use serde::Serialize;
use std::fmt;

/// An SEV-SNP product generation (the ARK it chains to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Product {
    /// EPYC 7003 (Zen 3).
    Milan,
    /// EPYC 9004/8004 (Zen 4), including Bergamo and Siena.
    Genoa,
    /// EPYC 9005 (Zen 5).
    Turin,
}

impl Product {
    /// Every product with a built-in root.
    pub const ALL: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

    /// The name AMD uses in certificate names ("Milan", ...).
    pub fn name(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        }
    }

    /// The product a report's CPUID family and model belong to.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Product> {
        match (family, model) {
            (0x19, 0x00..=0x0f) => Some(Product::Milan),
            (0x19, 0x10..=0x1f | 0xa0..=0xaf) => Some(Product::Genoa),
            (0x1a, 0x00..=0x11) => Some(Product::Turin),
            _ => None,
        }
    }

    /// Whether the product's TCB_VERSION has an FMC field (and the layout that goes
    /// with it).
    pub fn has_fmc(self) -> bool {
        self == Product::Turin
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component of a TCB_VERSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// FMC (Turin).
    Fmc,
    /// BOOT_LOADER.
    Bl,
    /// TEE (the PSP OS).
    Tee,
    /// SNP firmware.
    Snp,
    /// MICROCODE.
    Ucode,
}

impl Component {
    /// The name AMD's certificates (`<name>SPL`) and policy files use.
    pub fn name(self) -> &'static str {
        match self {
            Component::Fmc => "fmc",
            Component::Bl => "bl",
            Component::Tee => "tee",
            Component::Snp => "snp",
            Component::Ucode => "ucode",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded TCB_VERSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tcb {
    /// FMC SPL (Turin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
    /// BOOT_LOADER SPL.
    pub bl: u8,
    /// TEE SPL.
    pub tee: u8,
    /// SNP SPL.
    pub snp: u8,
    /// MICROCODE SPL.
    pub ucode: u8,
    /// The raw value.
    #[serde(serialize_with = "hex_u64")]
    pub raw: u64,
}

fn hex_u64<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:#018x}"))
}

impl Tcb {
    /// Decodes `bytes` with `product`'s layout; also returns the offsets (within the
    /// eight bytes) of reserved bytes that are not zero.
    pub fn decode(bytes: [u8; 8], product: Product) -> (Tcb, Vec<usize>) {
        let [b0, b1, b2, b3, b4, b5, b6, b7] = bytes;
        let raw = u64::from_le_bytes(bytes);
        let (tcb, reserved) = if product.has_fmc() {
            (
                Tcb {
                    fmc: Some(b0),
                    bl: b1,
                    tee: b2,
                    snp: b3,
                    ucode: b7,
                    raw,
                },
                [(4, b4), (5, b5), (6, b6)].to_vec(),
            )
        } else {
            (
                Tcb {
                    fmc: None,
                    bl: b0,
                    tee: b1,
                    snp: b6,
                    ucode: b7,
                    raw,
                },
                [(2, b2), (3, b3), (4, b4), (5, b5)].to_vec(),
            )
        };
        let bad = reserved
            .into_iter()
            .filter(|(_, b)| *b != 0)
            .map(|(i, _)| i)
            .collect();
        (tcb, bad)
    }

    /// The components with their values, FMC first when present.
    pub fn components(&self) -> Vec<(Component, u8)> {
        let mut v = Vec::with_capacity(5);
        if let Some(f) = self.fmc {
            v.push((Component::Fmc, f));
        }
        v.extend([
            (Component::Bl, self.bl),
            (Component::Tee, self.tee),
            (Component::Snp, self.snp),
            (Component::Ucode, self.ucode),
        ]);
        v
    }
}

impl fmt::Display for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .components()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_formats_md() {
        // FORMATS.md: 0x04000000000018db is bl=4 tee=0 snp=0x18 ucode=0xdb on Milan.
        let (t, bad) = Tcb::decode(0xdb18_0000_0000_0004_u64.to_le_bytes(), Product::Milan);
        assert_eq!(
            (t.bl, t.tee, t.snp, t.ucode, t.fmc),
            (4, 0, 0x18, 0xdb, None)
        );
        assert!(bad.is_empty());
        // Turin bytes 00 01 00 02 00 00 00 47: fmc=0 bl=1 tee=0 snp=2 ucode=0x47.
        let (t, bad) = Tcb::decode([0, 1, 0, 2, 0, 0, 0, 0x47], Product::Turin);
        assert_eq!(
            (t.fmc, t.bl, t.tee, t.snp, t.ucode),
            (Some(0), 1, 0, 2, 0x47)
        );
        assert!(bad.is_empty());
        let (_, bad) = Tcb::decode([0, 1, 0, 2, 0, 1, 0, 0x47], Product::Turin);
        assert_eq!(bad, vec![5]);
    }

    #[test]
    fn products_from_cpuid() {
        assert_eq!(Product::from_cpuid(0x19, 0x01), Some(Product::Milan));
        assert_eq!(Product::from_cpuid(0x19, 0x11), Some(Product::Genoa));
        assert_eq!(Product::from_cpuid(0x19, 0xa0), Some(Product::Genoa));
        assert_eq!(Product::from_cpuid(0x1a, 0x02), Some(Product::Turin));
        assert_eq!(Product::from_cpuid(0x17, 0x31), None);
    }
}
