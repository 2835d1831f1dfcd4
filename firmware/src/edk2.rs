//! Which edk2 recipe a TDVF image measures with.
//!
//! What TDVF extends into the RTMRs for a direct boot changed twice (../shared/FWCFG.md
//! section 4):
//! - edk2-stable202505 (`OvmfPkg/Library/QemuFwCfgLib/QemuFwCfgCacheInit.c`): the SEC
//!   phase caches fw_cfg items and measures six of them into RTMR 0, event data
//!   `"QEMU FW CFG\0"` followed by the item's name; and SMBIOS is measured at
//!   ReadyToBoot.
//! - edk2-stable202508 (commit a2ac0fea49, `X86QemuLoadImageLib.c`): the load options
//!   put `initrd=initrd ` in front of the command line instead of ` initrd=initrd` after
//!   it.
//!
//! Both show in the image: the first as the event data string in the (uncompressed) SEC
//! code, the second as the format argument in the loader library, which sits in the
//! LZMA-compressed DXE volume. [`detect`] looks for both.

use serde::Serialize;
use std::io::Write;

/// What a TDVF build measures, as far as cvm's TDX fold depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// The SEC phase measures the fw_cfg items it caches, and SMBIOS is measured at
    /// ReadyToBoot (edk2-stable202505 and later).
    pub fw_cfg_cache: bool,
    /// The load options are `initrd=initrd CMDLINE`, not `CMDLINE initrd=initrd`
    /// (edk2-stable202508 and later).
    pub initrd_prefix: bool,
}

impl Recipe {
    /// Before edk2-stable202505: what the reference tools in ../shared/reference model.
    pub const BEFORE_202505: Recipe = Recipe {
        fw_cfg_cache: false,
        initrd_prefix: false,
    };
    /// edk2-stable202505.
    pub const STABLE_202505: Recipe = Recipe {
        fw_cfg_cache: true,
        initrd_prefix: false,
    };
    /// edk2-stable202508 and later.
    pub const STABLE_202508: Recipe = Recipe {
        fw_cfg_cache: true,
        initrd_prefix: true,
    };

    /// The name of the release range this recipe is edk2's.
    pub fn name(self) -> &'static str {
        match (self.fw_cfg_cache, self.initrd_prefix) {
            (false, false) => "before edk2-stable202505",
            (true, false) => "edk2-stable202505",
            (true, true) => "edk2-stable202508 or later",
            (false, true) => "no fw_cfg cache measurement, initrd=initrd prefix",
        }
    }
}

/// A recipe and how it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detected {
    /// The recipe.
    pub recipe: Recipe,
    /// Its name ([`Recipe::name`]).
    pub name: &'static str,
    /// What in the image decided it, or why it is assumed.
    pub why: String,
    /// Whether the image did not show it and the recipe is assumed.
    pub assumed: bool,
    /// Whether the operator chose it (`--tdvf-recipe`).
    pub chosen: bool,
}

impl Detected {
    /// The recipe the operator chose.
    pub fn chosen(recipe: Recipe) -> Self {
        Detected {
            recipe,
            name: recipe.name(),
            why: "chosen with --tdvf-recipe".into(),
            assumed: false,
            chosen: true,
        }
    }

    /// No recipe: the firmware is not TDVF and extends no RTMR (its CVM_GUEST footer
    /// entry says so).
    pub fn none() -> Self {
        Detected {
            recipe: Recipe::BEFORE_202505,
            name: "none",
            why: "not TDVF: the image's CVM_GUEST footer entry says it extends no RTMR".into(),
            assumed: false,
            chosen: false,
        }
    }
}

/// The fw_cfg cache's event data string, NUL included (`QemuFwCfgCacheInit.c`
/// `EV_POSTCODE_INFO_QEMU_FW_CFG_DATA`).
pub const FW_CFG_EVENT_TAG: &[u8] = b"QEMU FW CFG\0";
/// The load-options argument of edk2-stable202508 and later, as the compiled string.
const PREFIX_FORM: &[u8] = b"initrd=initrd \0";
/// The one before it.
const SUFFIX_FORM: &[u8] = b" initrd=initrd\0";
/// `EFI_SECTION_GUID_DEFINED` with edk2's LZMA GUID (ee4e5898-3914-4259-9d6e-dc7bd79403cf).
const LZMA_GUID: [u8; 16] = [
    0x98, 0x58, 0x4e, 0xee, 0x14, 0x39, 0x59, 0x42, 0x9d, 0x6e, 0xdc, 0x7b, 0xd7, 0x94, 0x03, 0xcf,
];
const SECTION_GUID_DEFINED: u8 = 0x02;
/// The most decompressed output read per section (OVMF's DXE volume: 12-16 MiB).
const MAX_DECOMPRESSED: u64 = 64 << 20;

/// Decides the recipe of `image`.
pub fn detect(image: &[u8]) -> Detected {
    let cache = find(image, FW_CFG_EVENT_TAG).is_some();
    let form = lzma_sections(image).find_map(load_options_form);
    let recipe = Recipe {
        fw_cfg_cache: cache,
        initrd_prefix: form.unwrap_or(cache),
    };
    let cache_why = if cache {
        "the SEC code has the fw_cfg cache's event tag \"QEMU FW CFG\""
    } else {
        "no fw_cfg cache event tag \"QEMU FW CFG\" in the image"
    };
    let (form_why, assumed) = match form {
        Some(true) => ("the compressed DXE code has \"initrd=initrd \"", false),
        Some(false) => ("the compressed DXE code has \" initrd=initrd\"", false),
        None => (
            "the load-options form was not found in the compressed code, so it is assumed \
             from the release the fw_cfg cache tag dates the image to",
            true,
        ),
    };
    Detected {
        recipe,
        name: recipe.name(),
        why: format!("{cache_why}; {form_why}"),
        assumed,
        chosen: false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The payloads of the LZMA GUID-defined sections in `image` (a 24-bit size and the type
/// byte before the GUID, then a u16 data offset; bounds checked).
fn lzma_sections(image: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(at) = image.get(from..).and_then(|rest| find(rest, &LZMA_GUID)) {
            let guid = from.checked_add(at)?;
            from = guid.checked_add(1)?;
            let Some(start) = guid.checked_sub(4) else {
                continue;
            };
            let Some(&[a, b, c, kind]) = image.get(start..guid) else {
                continue;
            };
            if kind != SECTION_GUID_DEFINED {
                continue;
            }
            let size = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
            let Some(&[lo, hi]) = guid
                .checked_add(16)
                .zip(guid.checked_add(18))
                .and_then(|(s, e)| image.get(s..e))
            else {
                continue;
            };
            let offset = usize::from(u16::from_le_bytes([lo, hi]));
            let payload = start
                .checked_add(offset)
                .zip(start.checked_add(size))
                .and_then(|(s, e)| image.get(s..e));
            if let Some(p) = payload {
                return Some(p);
            }
        }
        None
    })
}

/// Streams the decompression of one section (edk2's LZMA: the 13-byte `.lzma` header,
/// then the stream) and stops at the first load-options string: `Some(true)` for the
/// prefix form, `Some(false)` for the suffix form, `None` if neither appears or the data
/// does not decompress.
fn load_options_form(data: &[u8]) -> Option<bool> {
    let mut sink = Search {
        tail: Vec::new(),
        found: None,
        written: 0,
    };
    let options = lzma_rs::decompress::Options {
        unpacked_size: lzma_rs::decompress::UnpackedSize::ReadFromHeader,
        memlimit: Some(usize::try_from(MAX_DECOMPRESSED).unwrap_or(usize::MAX)),
        allow_incomplete: false,
    };
    let mut input = data;
    // The sink ends the stream with an error once it has found a form.
    let _ = lzma_rs::lzma_decompress_with_options(&mut input, &mut sink, &options);
    sink.found
}

/// A writer that looks for the two load-options strings across write boundaries.
struct Search {
    tail: Vec<u8>,
    found: Option<bool>,
    written: u64,
}

impl Write for Search {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let stop = || std::io::Error::other("stop");
        if self.found.is_some() {
            return Err(stop());
        }
        self.written = self
            .written
            .saturating_add(u64::try_from(buf.len()).unwrap_or(u64::MAX));
        if self.written > MAX_DECOMPRESSED {
            return Err(stop());
        }
        let keep = PREFIX_FORM.len().max(SUFFIX_FORM.len());
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(buf);
        let prefix = find(&window, PREFIX_FORM);
        let suffix = find(&window, SUFFIX_FORM);
        self.found = match (prefix, suffix) {
            (Some(p), Some(s)) => Some(p < s),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        };
        let from = window.len().saturating_sub(keep);
        self.tail = window.get(from..).unwrap_or_default().to_vec();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn nothing_recognisable_is_the_old_recipe_assumed() {
        let d = detect(&[0u8; 4096]);
        assert_eq!(d.recipe, Recipe::BEFORE_202505);
        assert!(d.assumed);
        // A GUID with a section header pointing past the end, or at garbage: no panic.
        let mut image = vec![0u8; 64];
        image[4..7].copy_from_slice(&[0xff, 0xff, 0xff]);
        image[7] = SECTION_GUID_DEFINED;
        image[8..24].copy_from_slice(&LZMA_GUID);
        assert!(detect(&image).assumed);
        image[4..7].copy_from_slice(&[40, 0, 0]);
        image[24..26].copy_from_slice(&24u16.to_le_bytes());
        assert!(detect(&image).assumed);
        // The cache tag alone: the newer recipe, its load-options form assumed.
        let mut tagged = vec![0u8; 64];
        tagged[10..22].copy_from_slice(FW_CFG_EVENT_TAG);
        let d = detect(&tagged);
        assert_eq!(d.recipe, Recipe::STABLE_202508);
        assert!(d.assumed);
    }

    #[test]
    fn the_search_spans_writes() {
        let mut s = Search {
            tail: Vec::new(),
            found: None,
            written: 0,
        };
        s.write_all(b"xxxx initrd").unwrap();
        s.write_all(b"=initrd\0yyyy").unwrap();
        assert_eq!(s.found, Some(false));
        assert!(s.write(b"more").is_err());
    }
}
