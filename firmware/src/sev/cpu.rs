//! vCPU models and their CPUID signatures (CPUID Fn0000_0001_EAX, AMD pub. 25481).

use crate::error::{FirmwareError, Result};

/// The CPUID signature of `family`/`model`/`stepping`.
pub fn signature(family: u32, model: u32, stepping: u32) -> u32 {
    let (fam_low, fam_high) = if family > 0xf {
        (0xf, family.saturating_sub(0xf) & 0xff)
    } else {
        (family, 0)
    };
    (fam_high << 20)
        | (((model >> 4) & 0xf) << 16)
        | (fam_low << 8)
        | ((model & 0xf) << 4)
        | (stepping & 0xf)
}

/// The QEMU CPU models used with SEV guests: (name, family, model, stepping).
const MODELS: [(&str, u32, u32, u32); 16] = [
    ("EPYC", 23, 1, 2),
    ("EPYC-v1", 23, 1, 2),
    ("EPYC-v2", 23, 1, 2),
    ("EPYC-IBPB", 23, 1, 2),
    ("EPYC-v3", 23, 1, 2),
    ("EPYC-v4", 23, 1, 2),
    ("EPYC-Rome", 23, 49, 0),
    ("EPYC-Rome-v1", 23, 49, 0),
    ("EPYC-Rome-v2", 23, 49, 0),
    ("EPYC-Rome-v3", 23, 49, 0),
    ("EPYC-Milan", 25, 1, 1),
    ("EPYC-Milan-v1", 25, 1, 1),
    ("EPYC-Milan-v2", 25, 1, 1),
    ("EPYC-Genoa", 25, 17, 0),
    ("EPYC-Genoa-v1", 25, 17, 0),
    ("EPYC-Turin", 26, 0, 0),
];

/// The signature of a named QEMU CPU model (case-insensitive).
pub fn signature_of(name: &str) -> Result<u32> {
    MODELS
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name))
        .map(|&(_, f, m, s)| signature(f, m, s))
        .ok_or_else(|| {
            let known: Vec<&str> = MODELS.iter().map(|(n, ..)| *n).collect();
            FirmwareError::Unsupported(format!(
                "unknown vCPU type {name:?} (known: {})",
                known.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(signature_of("EPYC-Milan").unwrap(), 0x00a0_0f11);
        assert_eq!(signature_of("epyc-v4").unwrap(), 0x0080_0f12);
        assert_eq!(signature_of("EPYC-Genoa").unwrap(), 0x00a1_0f10);
        assert_eq!(signature_of("EPYC-Turin").unwrap(), 0x00b0_0f00);
        assert!(
            signature_of("Skylake")
                .unwrap_err()
                .to_string()
                .contains("unknown vCPU type")
        );
    }
}
