//! The reusable parts of anysql's project automation: finding PostgreSQL, running a throwaway
//! cluster and a competing load. The `cargo xtask` binary uses them, and so do the fault tests that
//! restart a server.

pub mod load;
pub mod pg;
pub mod process;
