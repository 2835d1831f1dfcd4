//! The built-in guest: a small bzImage assembled from `guest/builtin.s` by the build
//! script, booted by `cvm launch` when neither firmware nor a kernel is given. It prints
//! what the boot protocol handed it (e820 map, command line, initrd checksum, vCPUs from
//! the MP table, each vCPU announcing itself) on COM1 and stops through the debug-exit
//! port. Its command-line switches (`cvm.test=poke|hang|triple`, `cvm.exit=N`) exercise
//! the VMM's handling of misbehaving guests.

/// The built-in guest's bzImage.
pub const BUILTIN_GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtin.bin"));
