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

/// The error of a file larger than `limit`.
fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, "larger than the limit")
}

/// Reads the file at `path` whole into the heap, refusing one of more than `limit` bytes
/// (an error of kind [`io::ErrorKind::FileTooLarge`]) before reading it, or, for a file
/// whose size is not known in advance (a pipe, a device), once `limit` bytes were read.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    if file.metadata()?.len() > limit {
        return Err(too_large());
    }
    read_rest(file, limit)
}

/// Everything left in `file`, if it is at most `limit` bytes.
fn read_rest(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut v)?;
    if u64::try_from(v.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    Ok(v)
}

/// Reads the file at `path` whole, refusing one of more than `limit` bytes as
/// [`read_bounded`] does.
pub fn read(path: &Path, limit: u64) -> io::Result<Input> {
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large());
    }
    #[cfg(target_os = "linux")]
    {
        if size >= HUGE_PAGE
            && let Ok(len) = usize::try_from(size)
        {
            return read_anonymous(&mut file, len, limit);
        }
    }
    read_rest(file, limit).map(Input::from)
}

/// Reads `file`, `len` bytes long when it was opened, into anonymous memory advised for
/// huge pages. A file that changed size meanwhile is read as it is now.
#[cfg(target_os = "linux")]
fn read_anonymous(file: &mut File, len: usize, limit: u64) -> io::Result<Input> {
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
        let room = limit.saturating_sub(u64::try_from(len).unwrap_or(u64::MAX));
        let mut more = Vec::new();
        file.take(room.saturating_add(1)).read_to_end(&mut more)?;
        if u64::try_from(more.len()).unwrap_or(u64::MAX) > room {
            return Err(too_large());
        }
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
            let input = read(&path, 6 << 20).unwrap();
            assert_eq!(&input[..], &data[..], "{n} bytes");
            assert_eq!(read_bounded(&path, 6 << 20).unwrap(), data);
            if n > 0 {
                let limit = u64::try_from(n - 1).unwrap();
                for e in [
                    read(&path, limit).unwrap_err(),
                    read_bounded(&path, limit).unwrap_err(),
                ] {
                    assert_eq!(e.kind(), io::ErrorKind::FileTooLarge, "{n} bytes");
                }
            }
        }
        assert_eq!(
            read(&dir.join("missing"), 1).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // A device of unknown size is read no further than the limit.
        let zero = Path::new("/dev/zero");
        assert_eq!(
            read_bounded(zero, 4096).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
        assert_eq!(
            read(zero, 4096).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
