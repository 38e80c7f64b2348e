//! The reusable parts of anysql's project automation: finding PostgreSQL and running a throwaway
//! cluster. The `cargo xtask` binary uses them, and so do the fault tests that restart a server.

pub mod pg;
pub mod process;
