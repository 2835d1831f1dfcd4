//! Input files (firmware, kernels, initrds) read whole into memory.
//!
//! A fresh buffer of many MiB costs one page fault per 4 KiB page as `read` fills it,
//! and on a nested VM faults are expensive: reading the 14 MiB of a kernel into a new
//! `Vec` took 13 ms on the development machine, into memory advised for transparent huge
//! pages 3 ms. So on Linux a large file is read into anonymous memory with
//! `MADV_HUGEPAGE` (a hint; the kernel may ignore it). The file itself is never mapped:
//! what cvm parses and hashes is a private copy that another process cannot change or
//! truncate underneath it.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;

/// A file's contents.
#[derive(Debug)]
pub struct Input(Storage);

#[derive(Debug)]
enum Storage {
    Heap(Vec<u8>),
    #[cfg(target_os = "linux")]
    Anonymous {
        map: memmap2::Mmap,
        len: usize,
    },
}

impl Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Storage::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Storage::Anonymous { map, len } => map.get(..*len).unwrap_or_default(),
        }
    }
}

impl From<Vec<u8>> for Input {
    fn from(v: Vec<u8>) -> Self {
        Self(Storage::Heap(v))
    }
}

/// Files smaller than a huge page are read into the heap.
#[cfg(target_os = "linux")]
const HUGE_PAGE: u64 = 2 << 20;

/// Reads the file at `path` whole.
pub fn read(path: &Path) -> io::Result<Input> {
    let mut file = File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        let size = file.metadata()?.len();
        if size >= HUGE_PAGE
            && let Ok(len) = usize::try_from(size)
        {
            return read_anonymous(&mut file, len);
        }
    }
    let mut v = Vec::new();
    file.read_to_end(&mut v)?;
    Ok(v.into())
}

/// Reads `file`, `len` bytes long when it was opened, into anonymous memory advised for
/// huge pages. A file that changed size meanwhile is read as it is now.
#[cfg(target_os = "linux")]
fn read_anonymous(file: &mut File, len: usize) -> io::Result<Input> {
    let mut map = memmap2::MmapOptions::new().len(len).map_anon()?;
    // Only a hint: without transparent huge pages the read is merely slower.
    let _ = map.advise(memmap2::Advice::HugePage);
    let mut filled = 0;
    while let Some(rest) = map.get_mut(filled..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if filled == len {
        // The file grew since it was measured: keep reading into the heap.
        let mut more = Vec::new();
        file.read_to_end(&mut more)?;
        if !more.is_empty() {
            let mut all = map.get(..filled).unwrap_or_default().to_vec();
            all.append(&mut more);
            return Ok(all.into());
        }
    }
    Ok(Input(Storage::Anonymous {
        map: map.make_read_only()?,
        len: filled,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn contents(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i % 253).unwrap()).collect()
    }

    #[test]
    fn small_and_large_files_read_whole() {
        let dir = std::env::temp_dir().join(format!("cvm-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in [0, 1, 4096, (2 << 20) - 1, 2 << 20, (5 << 20) + 17] {
            let path = dir.join(format!("f{n}"));
            let data = contents(n);
            std::fs::write(&path, &data).unwrap();
            let input = read(&path).unwrap();
            assert_eq!(&input[..], &data[..], "{n} bytes");
        }
        assert_eq!(
            read(&dir.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
