//! keiko-udp: the system calls keiko-dns makes on its UDP sockets that the
//! standard library and socket2 do not offer, behind a safe API.
//!
//! - [`Batch`]: `recvmmsg`/`sendmmsg`, so one system call moves up to
//!   [`BATCH`] datagrams each way, with buffers that are allocated once;
//! - [`omit_path_mtu_discovery`]: the `IP(V6)_MTU_DISCOVER` socket option;
//! - [`send_with_fds`]/[`recv_with_fds`]: passing open sockets to another
//!   process (`SCM_RIGHTS`), through rustix's safe wrappers.
//! - [`release_free_memory`]: `malloc_trim`, for after bursts of
//!   connections.
//!
//! This crate holds all of keiko-dns's `unsafe` code (the main crate
//! forbids it), so that it can be read in one sitting: every `unsafe` block
//! says why it is sound in a `// SAFETY:` comment next to it. Linux only.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod batch;
mod fdpass;
mod memory;
mod sockopt;

pub use batch::{BATCH, Batch, RECV_SIZE};
pub use fdpass::{MAX_FDS, recv_with_fds, send_with_fds};
pub use memory::release_free_memory;
pub use sockopt::omit_path_mtu_discovery;
